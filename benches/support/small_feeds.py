"""The small feeds benches/sources.sh and benches/instances.sh serve: N RSS feeds of 5 items
(~4.4 KB) in SCRATCH/feeds/I.xml (kept when already there), and SCRATCH/nginx.conf serving
them on HOSTS loopback addresses 127.0.1.1… at PORT, with ETags (so a refetch is a 304).

    python3 benches/support/small_feeds.py SCRATCH N HOSTS PORT [WORKERS]   (nginx's, default 1)

A source I's URL is http://127.0.1.{I % HOSTS + 1}:PORT/I.xml.
"""
import os
import sys

scratch, n, hosts, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
workers = sys.argv[5] if len(sys.argv) > 5 else "1"
feeds = os.path.join(scratch, "feeds")
os.makedirs(feeds, exist_ok=True)
body = "<p>" + "市场消息与公司公告，" * 20 + "</p>"
for i in range(n):
    path = os.path.join(feeds, f"{i}.xml")
    if os.path.exists(path):
        continue
    items = "".join(
        f"<item><title>Source {i} story {k}: 第{k}条</title><link>http://h/{i}/{k}</link>"
        f"<guid>s{i}-{k}</guid><pubDate>Tue, 01 Dec 2026 {k:02d}:{i % 60:02d}:00 GMT</pubDate>"
        f"<description><![CDATA[{body} {i}-{k}]]></description></item>"
        for k in range(5)
    )
    with open(path, "w") as f:
        f.write(f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
                f"<title>Source {i}</title><link>http://h/{i}</link><description>d</description>"
                f"{items}</channel></rss>")
with open(os.path.join(scratch, "nginx.conf"), "w") as c:
    listens = "".join(f"    listen 127.0.1.{h + 1}:{port};\n" for h in range(hosts))
    c.write(f"""worker_processes {workers};
pid {scratch}/nginx.pid;
error_log {scratch}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  etag on;
  server {{
{listens}    root {feeds};
  }}
}}
""")
