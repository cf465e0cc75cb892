//! A scratch PostgreSQL database per test, on the server `$TRIBUTARY_POSTGRES_URL` names
//! (`bash .ci/run` starts a throwaway one).

use super::Pg;

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The URL of a new, empty database on the test server.
pub(crate) fn database() -> String {
    let url = std::env::var("TRIBUTARY_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "TRIBUTARY_POSTGRES_URL is not set: a PostgreSQL server's URL; \
             `bash .ci/run` starts one"
        )
    });
    let name = format!(
        "u_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test server");
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a scratch database");
        drop(client);
        let _ = connection.await;
    });
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// A pool on a new, empty database, migrated.
pub(crate) fn scratch() -> Pg {
    Pg::connect(&database(), 2).expect("connect to a scratch database")
}
