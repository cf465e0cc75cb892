//! What the miniature of 中证网 (www.cs.com.cn) in `tests/fixtures/cs.com.cn/` holds, as the
//! HTML-source tests expect to see it again: one row per document, one per list item, the
//! decoys that must never be picked up, and the text that must never reach an entry's body.
//!
//! The site's structure (selectors, encodings, date formats, link shapes) follows the notes on
//! the real site; the text is made up. `tests/fixtures/cs.com.cn/README.md` describes each file.
//! `html_sources::fixture_site_matches_the_expected_table` checks this table against the
//! files themselves, so a failure elsewhere is the binary's, not the table's.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Folder of the miniature site; a file's path under it is its URL path on the real site.
pub fn site_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cs.com.cn")
}

/// The bytes of the site file at URL path `path` (`/xwzx/hg/index.html`).
pub fn site_bytes(path: &str) -> Vec<u8> {
    let file = site_dir().join(path.trim_start_matches('/'));
    fs::read(&file).unwrap_or_else(|e| panic!("reading fixture {}: {e}", file.display()))
}

/// The 新浪财经-style roll API answer (`/api/roll/get?pageid=155&lid=1686…` on
/// feed.mix.sina.com.cn), kept beside the cs.com.cn site for the JSON page sources to come.
pub fn sina_roll_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/feed.mix.sina.com.cn/api/roll/get.json")
}

/// How a page's bytes are encoded (whatever its `<meta>` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bytes {
    Gbk,
    Utf8,
}

/// Where an entry's published date comes from, in the contract's fallback order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFrom {
    /// `div.artc_info time` on the article page.
    ArticlePage,
    /// The item's `em` on the list page (the article page has no time).
    ListPage,
    /// `tYYYYMMDD_` in the link (neither page has a time): midnight in the source's zone.
    Url,
}

impl DateFrom {
    /// The provenance words `check` prints (`… from article page)`).
    pub fn words(self) -> &'static str {
        match self {
            DateFrom::ArticlePage => "article page",
            DateFrom::ListPage => "list page",
            DateFrom::Url => "URL",
        }
    }
}

/// One page of the site: its URL path, the encoding of its bytes, and the charset its
/// `<meta>` declares (which may lie: UTF-8 bytes labelled gb2312/gbk, as on the 2024 site).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub path: &'static str,
    pub bytes: Bytes,
    pub label: &'static str,
    /// The `<meta charset>` sits beyond the first 1024 bytes (past the WHATWG prescan).
    pub late_meta: bool,
}

const fn page(path: &'static str, bytes: Bytes, label: &'static str) -> Page {
    Page {
        path,
        bytes,
        label,
        late_meta: false,
    }
}

/// One document (one TRS docid): what its entry must look like once stored.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    /// Short name used in the tables below and in failure messages.
    pub key: &'static str,
    /// The site's document id (`t20201201_<docid>.html`), unique across channels.
    pub doc_id: &'static str,
    /// The `h3` on every list that carries it (and the article's `h1`).
    pub title: &'static str,
    /// Article pages with this docid. Two when the document was published in two channels
    /// under different URLs (same docid, different folder).
    pub pages: &'static [Page],
    /// The published instant, RFC 3339 UTC.
    pub published: &'static str,
    /// The date as written on the page it comes from (Beijing time, no zone).
    pub local: &'static str,
    pub date_from: DateFrom,
    /// The reporter: the first `em` of `div.artc_info` (the second is the site's name).
    pub author: Option<&'static str>,
    /// Opens the body text: within the first 80 characters once style blocks are gone.
    pub lead: &'static str,
    /// Ends the body's last paragraph: present only when the full article text was taken.
    pub phrase: &'static str,
    /// URL paths that the body's relative `href` / `src` must have become (absolute, on the
    /// server the article came from).
    pub absolute: &'static [&'static str],
}

/// The reporter's outlet, the second `em` of `div.artc_info`: never the author.
pub const SITE_EM: &str = "中国证券报·中证网";

pub const DOCS: &[Doc] = &[
    Doc {
        key: "D1",
        doc_id: "6116434",
        title: "恒泰股份：全资子公司中标5870万元智慧园区项目",
        pages: &[page(
            "/sylm/jsbd/202012/t20201201_6116434.html",
            Bytes::Gbk,
            "gbk",
        )],
        published: "2020-12-01T10:59:00Z",
        local: "2020-12-01 18:59",
        date_from: DateFrom::ArticlePage,
        author: Some("王博"),
        lead: "中证网讯（记者 王博）恒泰股份12月1日晚间公告",
        phrase: "项目工期为18个月，预计将对公司2021年经营业绩产生积极影响",
        absolute: &[
            "/sylm/jsbd/202012/W020201201618591234567.png",
            "/ssgs/gsxw/202011/t20201130_6116102.html",
        ],
    },
    Doc {
        key: "D2",
        doc_id: "6116416",
        title: "央行：保持流动性合理充裕 引导市场利率围绕政策利率波动",
        pages: &[page(
            "/xwzx/hg/202012/t20201201_6116416.html",
            Bytes::Utf8,
            "gb2312",
        )],
        published: "2020-12-01T10:46:00Z",
        local: "2020-12-01 18:46",
        date_from: DateFrom::ArticlePage,
        author: Some("彭扬"),
        lead: "中证网讯（记者 彭扬）中国人民银行12月1日表示",
        phrase: "稳健的货币政策要灵活精准、合理适度",
        absolute: &[],
    },
    Doc {
        key: "D3",
        doc_id: "6116420",
        title: "海通证券助力厦门市政集团发行20亿元公司债券",
        pages: &[
            page(
                "/sylm/jsbd/202012/t20201201_6116420.html",
                Bytes::Gbk,
                "gbk",
            ),
            page(
                "/ssgs/gsxw/202012/t20201201_6116420.html",
                Bytes::Utf8,
                "utf-8",
            ),
        ],
        published: "2020-12-01T09:35:00Z",
        local: "2020-12-01 17:35",
        date_from: DateFrom::ArticlePage,
        author: Some("张军"),
        lead: "中证网讯（记者 张军）12月1日，由海通证券担任牵头主承销商",
        phrase: "本期债券票面利率为3.65%，认购倍数达2.8倍",
        // `../../../…` from either copy's folder: the same absolute URLs.
        absolute: &[
            "/images/2020/W020201201_bond_chart.png",
            "/xwzx/hg/202012/t20201201_6116416.html",
        ],
    },
    Doc {
        key: "D4",
        doc_id: "6116401",
        title: "沪深两市成交额连续第5个交易日突破8000亿元",
        pages: &[page(
            "/sylm/jsbd/202012/t20201201_6116401.html",
            Bytes::Gbk,
            "gbk",
        )],
        published: "2020-12-01T08:51:00Z",
        local: "2020-12-01 16:51",
        // A 快讯 page without div.artc_info: no reporter, no time (its related-articles list
        // has <time>s, for a loose `time` selector to trip on).
        date_from: DateFrom::ListPage,
        author: None,
        lead: "中证网讯 截至12月1日收盘",
        phrase: "北向资金全天净买入55.38亿元",
        absolute: &[],
    },
    Doc {
        key: "D5",
        doc_id: "6116405",
        title: "上交所：前11月科创板IPO融资额超2000亿元",
        pages: &[page(
            "/sylm/jsbd/202012/t20201201_6116405.html",
            Bytes::Gbk,
            "gbk",
        )],
        // The list says 16:53, the article 16:50: the article page wins.
        published: "2020-12-01T08:50:00Z",
        local: "2020-12-01 16:50",
        date_from: DateFrom::ArticlePage,
        author: Some("黄灵灵"),
        lead: "中证网讯（记者 黄灵灵）上交所12月1日披露",
        phrase: "截至11月底，科创板上市公司总数达到200家",
        absolute: &[],
    },
    Doc {
        key: "D6",
        doc_id: "6116398",
        title: "国家统计局：11月制造业PMI为52.1% 连续9个月位于临界点以上",
        pages: &[page(
            "/xwzx/hg/202012/t20201201_6116398.html",
            Bytes::Utf8,
            "utf-8",
        )],
        published: "2020-12-01T07:30:00Z",
        local: "2020-12-01 15:30",
        date_from: DateFrom::ArticlePage,
        author: Some("倪铭娅"),
        lead: "中证网讯（记者 倪铭娅）国家统计局11月30日发布数据",
        phrase: "11月非制造业商务活动指数为56.4%，综合PMI产出指数为55.7%",
        absolute: &["/xwzx/hg/202012/W020201201398765432100.jpg"],
    },
    Doc {
        key: "D7",
        doc_id: "6116150",
        title: "财政部：前10个月国有企业利润总额同比降幅收窄",
        pages: &[page(
            "/xwzx/hg/202011/t20201130_6116150.html",
            Bytes::Utf8,
            "gbk",
        )],
        published: "2020-11-30T13:05:00Z",
        local: "2020-11-30 21:05",
        date_from: DateFrom::ArticlePage,
        author: Some("刘洋"),
        lead: "中证网讯（记者 刘洋）财政部11月30日发布数据",
        phrase: "前10个月国有企业营业总收入同比增长1.2%",
        absolute: &[],
    },
    Doc {
        key: "D8",
        doc_id: "6116388",
        title: "瑞丰新能拟投资不超过120亿元建设锂电池生产基地",
        pages: &[Page {
            path: "/ssgs/gsxw/202012/t20201201_6116388.html",
            bytes: Bytes::Utf8,
            label: "utf-8",
            late_meta: true,
        }],
        published: "2020-12-01T06:20:00Z",
        local: "2020-12-01 14:20",
        date_from: DateFrom::ArticlePage,
        author: Some("陈晓"),
        lead: "中证网讯（记者 陈晓）瑞丰新能12月1日晚间公告",
        phrase: "项目建成后将新增年产能30GWh",
        absolute: &[],
    },
    Doc {
        key: "D9",
        doc_id: "6116380",
        title: "券商板块午后拉升 多只个股涨停",
        pages: &[page(
            "/gppd/gsyj/202012/t20201201_6116380.html",
            Bytes::Gbk,
            "gb2312",
        )],
        published: "2020-12-01T03:45:00Z",
        local: "2020-12-01 11:45",
        date_from: DateFrom::ArticlePage,
        author: Some("吴桐"),
        lead: "中证网讯（记者 吴桐）12月1日，券商板块午后快速拉升",
        phrase: "目前券商板块整体估值仍处于历史较低水平",
        absolute: &[],
    },
    Doc {
        key: "D10",
        doc_id: "6116102",
        title: "多家上市公司披露回购进展 累计回购金额超50亿元",
        pages: &[page(
            "/ssgs/gsxw/202011/t20201130_6116102.html",
            Bytes::Utf8,
            "utf-8",
        )],
        published: "2020-11-30T11:12:00Z",
        local: "2020-11-30 19:12",
        date_from: DateFrom::ArticlePage,
        author: Some("赵磊"),
        lead: "中证网讯（记者 赵磊）11月30日晚间",
        phrase: "回购股份将用于员工持股计划或股权激励",
        absolute: &[],
    },
    Doc {
        key: "D11",
        doc_id: "6116377",
        // 珺 and 喆 are GBK but not GB2312; the page says gb2312 (a strict GB2312 decoder fails).
        title: "珺达股份：前三季度新签订单同比增长逾三成",
        pages: &[page(
            "/gppd/gsyj/202012/t20201201_6116377.html",
            Bytes::Gbk,
            "gb2312",
        )],
        published: "2020-12-01T03:31:00Z",
        local: "2020-12-01 11:31",
        date_from: DateFrom::ArticlePage,
        author: Some("周喆"),
        lead: "中证网讯（记者 周喆）珺达股份12月1日",
        phrase: "公司预计全年新签订单金额将创历史新高",
        absolute: &[],
    },
    Doc {
        key: "D12",
        doc_id: "6116090",
        title: "北向资金11月净买入超500亿元 创年内单月新高",
        pages: &[page(
            "/gppd/gsyj/202011/t20201130_6116090.html",
            Bytes::Gbk,
            "gb2312",
        )],
        // No em on the list, no time on the article: t20201130_ → 2020-11-30 00:00 Beijing.
        published: "2020-11-29T16:00:00Z",
        local: "2020-11-30",
        date_from: DateFrom::Url,
        author: Some("孙悦"),
        lead: "中证网讯（记者 孙悦）Wind数据显示",
        phrase: "电子、医药生物行业获重点加仓",
        absolute: &[],
    },
];

/// One `li` of a channel's list.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    /// The `href` as written on the list page (relative, `./` or `../../`).
    pub href: &'static str,
    /// The URL path it resolves to against the channel URL (which ends with `/`).
    pub page: &'static str,
    /// [`Doc::key`] of the document.
    pub doc: &'static str,
    /// The item's `em` text, if it has one.
    pub em: Option<&'static str>,
    /// The item's `span` text (empty on most channels).
    pub summary: &'static str,
}

/// One channel (one configured source).
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    /// Source id, as in the shipped `config/tributary.toml`.
    pub id: &'static str,
    pub name: &'static str,
    /// The channel URL path: a folder, with the trailing slash.
    pub path: &'static str,
    pub list: Page,
    pub listings: &'static [Listing],
}

const fn item(
    href: &'static str,
    page: &'static str,
    doc: &'static str,
    em: Option<&'static str>,
) -> Listing {
    Listing {
        href,
        page,
        doc,
        em,
        summary: "",
    }
}

pub const JSBD: Channel = Channel {
    id: "cs-jsbd",
    name: "中证网·中证快讯",
    path: "/sylm/jsbd/",
    list: page("/sylm/jsbd/index.html", Bytes::Gbk, "gbk"),
    listings: &[
        item(
            "./202012/t20201201_6116434.html",
            "/sylm/jsbd/202012/t20201201_6116434.html",
            "D1",
            Some("2020-12-01 18:59"),
        ),
        item(
            "../../xwzx/hg/202012/t20201201_6116416.html",
            "/xwzx/hg/202012/t20201201_6116416.html",
            "D2",
            Some("2020-12-01 18:46"),
        ),
        item(
            "./202012/t20201201_6116420.html",
            "/sylm/jsbd/202012/t20201201_6116420.html",
            "D3",
            Some("2020-12-01 17:35"),
        ),
        item(
            "./202012/t20201201_6116401.html",
            "/sylm/jsbd/202012/t20201201_6116401.html",
            "D4",
            Some("2020-12-01 16:51"),
        ),
        item(
            "./202012/t20201201_6116405.html",
            "/sylm/jsbd/202012/t20201201_6116405.html",
            "D5",
            Some("2020-12-01 16:53"),
        ),
        item(
            "../../gppd/gsyj/202012/t20201201_6116380.html",
            "/gppd/gsyj/202012/t20201201_6116380.html",
            "D9",
            Some("2020-12-01 11:45"),
        ),
    ],
};

pub const HG: Channel = Channel {
    id: "cs-hg",
    name: "中证网·财经要闻",
    path: "/xwzx/hg/",
    // UTF-8 bytes still labelled gb2312.
    list: page("/xwzx/hg/index.html", Bytes::Utf8, "gb2312"),
    listings: &[
        Listing {
            summary: "央行有关负责人就流动性和市场利率答记者问。",
            ..item(
                "./202012/t20201201_6116416.html",
                "/xwzx/hg/202012/t20201201_6116416.html",
                "D2",
                Some("2020-12-01 18:46"),
            )
        },
        Listing {
            summary: "制造业景气度持续回升，供需两端同步改善。",
            ..item(
                "./202012/t20201201_6116398.html",
                "/xwzx/hg/202012/t20201201_6116398.html",
                "D6",
                Some("2020-12-01 15:30"),
            )
        },
        Listing {
            summary: "国有企业主要效益指标降幅逐月收窄。",
            ..item(
                "../../xwzx/hg/202011/t20201130_6116150.html",
                "/xwzx/hg/202011/t20201130_6116150.html",
                "D7",
                Some("2020-11-30 21:05"),
            )
        },
    ],
};

pub const GSXW: Channel = Channel {
    id: "cs-gsxw",
    name: "中证网·公司要闻",
    path: "/ssgs/gsxw/",
    list: page("/ssgs/gsxw/index.html", Bytes::Utf8, "utf-8"),
    listings: &[
        item(
            "./202012/t20201201_6116420.html",
            "/ssgs/gsxw/202012/t20201201_6116420.html",
            "D3",
            Some("2020-12-01 17:35"),
        ),
        item(
            "./202012/t20201201_6116388.html",
            "/ssgs/gsxw/202012/t20201201_6116388.html",
            "D8",
            Some("2020-12-01 14:20"),
        ),
        item(
            "../../ssgs/gsxw/202011/t20201130_6116102.html",
            "/ssgs/gsxw/202011/t20201130_6116102.html",
            "D10",
            Some("2020-11-30 19:12"),
        ),
    ],
};

pub const GSYJ: Channel = Channel {
    id: "cs-gsyj",
    name: "中证网·A股市场",
    path: "/gppd/gsyj/",
    list: page("/gppd/gsyj/index.html", Bytes::Gbk, "gb2312"),
    listings: &[
        item(
            "./202012/t20201201_6116377.html",
            "/gppd/gsyj/202012/t20201201_6116377.html",
            "D11",
            Some("2020-12-01 11:31"),
        ),
        item(
            "./202011/t20201130_6116090.html",
            "/gppd/gsyj/202011/t20201130_6116090.html",
            "D12",
            None,
        ),
        item(
            "../../gppd/gsyj/202012/t20201201_6116380.html",
            "/gppd/gsyj/202012/t20201201_6116380.html",
            "D9",
            Some("2020-12-01 11:45"),
        ),
    ],
};

pub const CHANNELS: [Channel; 4] = [JSBD, HG, GSXW, GSYJ];

/// The 2020 行业资讯 list (`ul.list-lm li`, span dates, GBK): today's selectors match nothing.
pub const OLD_TEMPLATE: Page = page("/cj/hyzx/index.html", Bytes::Gbk, "gbk");
pub const OLD_TEMPLATE_PATH: &str = "/cj/hyzx/";
pub const OLD_TEMPLATE_TITLES: &[&str] = &[
    "光伏行业景气度持续回升 龙头企业扩产提速",
    "新能源汽车产销数据环比改善",
    "多地出台措施促进汽车消费",
];

/// Titles of the sidebar, ranking and related-article lists: never an entry.
pub const DECOY_TITLES: &[&str] = &[
    "视频｜机构密集调研 这些公司获青睐",
    "视频｜三分钟看懂注册制改革",
    "直播汇：上市公司业绩说明会集锦",
    "投教：理性投资 远离非法证券活动",
    "排行：十只个股获机构上调评级",
    "排行：北交所筹建进展一览",
    "相关：三季度货币政策执行报告解读",
    "相关：券商中期业绩回顾",
    "热点：年末流动性展望",
];

/// Text of an article page that is not the article: TRS `<style>` CSS, an inline script, the
/// share bar, the pager script, the 声明 footer, the related-articles box, the site footer.
pub const NOT_CONTENT: &[&str] = &[
    ".TRS_Editor P{",
    "margin-top",
    "font-family",
    "TRS_IMG_ZOOM",
    "分享到",
    "currentPage",
    "中证网声明",
    "相关阅读",
    "版权所有",
];

/// The rows of the sina roll fixture: (title, url, ctime, ctime as UTC).
pub const SINA_ROLL: &[(&str, &str, &str, &str)] = &[
    (
        "央行：保持流动性合理充裕 引导市场利率围绕政策利率波动",
        "https://finance.sina.com.cn/china/2020-12-01/doc-iiznctke4257690.shtml",
        "1606819560",
        "2020-12-01T10:46:00Z",
    ),
    (
        "国家统计局：11月制造业PMI为52.1%",
        "https://finance.sina.com.cn/china/gncj/2020-12-01/doc-iiznctke4256011.shtml",
        "1606807800",
        "2020-12-01T07:30:00Z",
    ),
    (
        "恒泰股份：全资子公司中标5870万元智慧园区项目",
        "https://finance.sina.com.cn/roll/2020-12-01/doc-iiznctke4249870.shtml",
        "1606820340",
        "2020-12-01T10:59:00Z",
    ),
];

pub fn doc(key: &str) -> &'static Doc {
    DOCS.iter()
        .find(|d| d.key == key)
        .unwrap_or_else(|| panic!("no fixture document {key}"))
}

/// Every document, newest first (the order merged feeds must have).
pub fn docs_newest_first() -> Vec<&'static Doc> {
    let mut docs: Vec<&Doc> = DOCS.iter().collect();
    docs.sort_by(|a, b| b.published.cmp(a.published));
    docs
}

/// The documents of `channels`, each once, newest first.
pub fn docs_of(channels: &[Channel]) -> Vec<&'static Doc> {
    docs_newest_first()
        .into_iter()
        .filter(|d| {
            channels
                .iter()
                .any(|c| c.listings.iter().any(|l| l.doc == d.key))
        })
        .collect()
}

/// The channels (of `channels`) listing document `key`, with the listing.
pub fn listed_by(channels: &[Channel], key: &str) -> Vec<(Channel, Listing)> {
    channels
        .iter()
        .flat_map(|c| {
            c.listings
                .iter()
                .filter(|l| l.doc == key)
                .map(move |l| (*c, *l))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Configs for page sources
// ---------------------------------------------------------------------------------------------

/// The `[sources.html]` / `[sources.article]` tables of the contract for 中证网 channels.
pub const CS_TABLES: &str = r#"[sources.html]
item = "ul.ch_type3_list > li"
title = "h3"
link = "a"
date = "em"
date_format = "%Y-%m-%d %H:%M"
summary = "span"
id_pattern = 't\d{8}_(\d+)\.html'
[sources.article]
content = "article.cont_article > section"
author = "div.artc_info em"
date = "div.artc_info time"
remove = ["style", "script", "footer", ".share"]
"#;

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// One `[[sources]]` page source (kind "html", category 金融, `allow_private` since the
/// fixture site is on 127.0.0.1) with the given tables; `timezone` per source when given.
pub fn html_source_toml(
    id: &str,
    name: &str,
    url: &str,
    timezone: Option<&str>,
    tables: &str,
) -> String {
    let mut out = String::from("\n[[sources]]\n");
    let _ = writeln!(out, "id = {}", toml_str(id));
    let _ = writeln!(out, "name = {}", toml_str(name));
    let _ = writeln!(out, "url = {}", toml_str(url));
    out.push_str("category = \"金融\"\ntags = [\"资讯\"]\nkind = \"html\"\n");
    if let Some(tz) = timezone {
        let _ = writeln!(out, "timezone = {}", toml_str(tz));
    }
    out.push_str("allow_private = true\n");
    out.push_str(tables);
    out
}

/// `[server]`, `[storage]` (`tributary.db` beside the config) and `[defaults]` with the given
/// zone for naive page dates.
pub fn config_head(listen: SocketAddr, default_timezone: &str) -> String {
    format!(
        "[server]\nlisten = {}\n\n[storage]\n{}\n[defaults]\n\
         schedule = \"every 15m\"\ntimezone = {}\n",
        toml_str(&listen.to_string()),
        super::storage_lines("tributary.db"),
        toml_str(default_timezone)
    )
}
