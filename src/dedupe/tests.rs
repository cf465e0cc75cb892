use super::*;

fn fp(title: &str, body: &str) -> Fingerprint {
    fingerprint(title, body)
}

#[test]
fn numbers_are_read_around_any_script() {
    let got = numbers("营收5,870.42万元，Q1增长3.5%，A350交付12架；2.");
    let want: BTreeSet<String> = ["5870.42", "3.5", "12", "2"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
    // One amount in 亿 or in 万 is one figure; NFKC has folded full-width digits before.
    let got = numbers("募资1.25亿元，另12500万元；2.31亿股");
    let want: BTreeSet<String> = ["12500", "23100"].into_iter().map(String::from).collect();
    assert_eq!(got, want);
}

#[test]
fn figures_round_trip_and_decide_as_compare_does() {
    let t = Thresholds::default();
    let a = fp(
        "恒泰股份：全资子公司中标5870万元项目",
        "合同金额5870万元，工期12个月。",
    );
    let b = fp(
        "恒泰股份：全资子公司中标5780万元项目",
        "合同金额5780万元，工期12个月。",
    );
    let (fa, fb) = (Figures::of(&a), Figures::of(&b));
    assert_eq!(fa.to_stored(), "17\t5870\t12 5870");
    assert_eq!(Figures::parse(&fa.to_stored()), Some(fa.clone()));
    assert_eq!(
        Figures::of(&fp("", "")),
        Figures::parse("0\t\t").expect("empty")
    );
    for bad in [
        "",
        "15",
        "15\t5870",
        "x\t\t",
        "1\t5870 \t5870",
        "1\t\t-3",
        "1\t\t3\t4",
    ] {
        assert_eq!(Figures::parse(bad), None, "{bad:?}");
    }
    assert!(figures_differ(&fa, &fb));
    assert_eq!(compare(&a, &b, &t), None);
    let c = fp("恒泰股份全资子公司中标5870万元智慧园区项目", "");
    assert!(!figures_differ(&fa, &Figures::of(&c)));
    // Given figures are used as they are.
    let given = Features::with_figures(&a, &fb);
    assert_eq!(given.figures(), &fb);
}

#[test]
fn bigrams_hash_each_pair_of_characters_as_text() {
    let want: HashSet<u64> = [fnv("a中".as_bytes()), fnv("中b".as_bytes())]
        .into_iter()
        .collect();
    assert_eq!(bigrams("a 中, b"), want);
    assert_eq!(
        bigrams("中"),
        [fnv("中".as_bytes())].into_iter().collect::<HashSet<u64>>()
    );
}

#[test]
fn prepared_together_or_one_by_one_is_the_same() {
    let on = Thresholds::default();
    let off = Thresholds {
        enabled: false,
        ..Thresholds::default()
    };
    let texts = [
        (
            "UPDATE 2-恒泰股份中标5870万元项目",
            "合同金额５８７０万元，工期12个月，代码300004。".repeat(9),
        ),
        (
            "Acme wins $58.7 million contract",
            "Acme Corp said on Tuesday it won 58.7 million.".repeat(6),
        ),
        ("", String::new()),
    ];
    for (title, body) in texts {
        let (fp, keys, figures) = prepare(title, &body, &on);
        assert_eq!(fp, fingerprint(title, &body));
        assert_eq!(keys, candidate_keys(&fp, &on));
        assert_eq!(figures, Figures::of(&fp));
        assert_eq!(prepare(title, &body, &off).1, Vec::<i64>::new());
    }
}

/// Fingerprints are stored, and stored ones are compared with new ones: how they are built
/// must not drift.
#[test]
fn stored_fingerprints_stay_as_they_were_built() {
    let cases = [
        ("央行：保持流动性合理充裕", "中国人民银行12月1日表示，将继续保持流动性合理充裕，引导市场利率围绕政策利率波动。央行有关负责人指出，当前经济持续稳定恢复。"),
        ("UPDATE 2-Acme wins $58.7 million contract", "Acme Corp said on Tuesday, Dec. 1, it won a 58.7 million contract (1,250 units); shares rose 3.5%."),
        ("Ｆｕｌｌ－ｗｉｄｔｈ　１２３", "ＡＢＣ、ｄｅｆ。ﬁ ① Déjà e\u{301}"),
    ];
    let got: Vec<String> = cases
        .iter()
        .map(|(t, b)| {
            let fp = fingerprint(t, b);
            format!("{}|{}|{:016x}", fp.title, fp.body, fp.simhash)
        })
        .collect();
    assert_eq!(got, PINNED);
}

const PINNED: [&str; 3] = [
    "央行 保持流动性合理充裕|中国人民银行12月1日表示 将继续保持流动性合理充裕 引导市场利率围绕政策利率波动 央行有关负责人指出 当前经济持续稳定恢复|13a472c36abd8b43",
    "acme wins 58.7 million contract|acme corp said on tuesday dec 1, it won a 58.7 million contract 1,250 units shares rose 3.5|627e4eeb89144ebc",
    "full width 123|abc def fi 1 déjà é|ef1bd5f798cc339e",
];

#[test]
fn text_already_in_nfkc_folds_as_normalized_text_does() {
    for text in [
        "Déjà vu, ＡＢＣ１２３　x",
        "e\u{301}te\u{301}",
        "中标5870万元。Mixed CASE…",
        "ﬁ ① ㎞",
    ] {
        let slow = fold(text.nfkc());
        assert_eq!(normalize(text), slow, "{text:?}");
    }
    assert_eq!(normalize("e\u{301}"), "é", "combining marks compose");
}

#[test]
fn full_width_digits_fold() {
    assert_eq!(
        normalize("中标５８７０万元，　增长１２．５％"),
        "中标5870万元 增长12.5"
    );
    assert_eq!(
        numbers("中标5870万元，增长12.5%，代码300004"),
        ["12.5", "300004", "5870"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn different_amounts_are_different_news() {
    let t = Thresholds::default();
    let a = fp("恒泰股份：全资子公司中标5870万元项目", "");
    let b = fp("恒泰股份：全资子公司中标5780万元项目", "");
    assert_eq!(compare(&a, &b, &t), None);
    let c = fp("恒泰股份全资子公司中标5870万元智慧园区项目", "");
    assert_eq!(compare(&a, &c, &t).map(|m| m.rule), Some(Rule::Headline));
}

#[test]
fn a_wire_copy_with_boilerplate_matches() {
    let t = Thresholds::default();
    let body = "中国人民银行12月1日表示，将继续保持流动性合理充裕，引导市场利率围绕政策利率波动。\
        央行有关负责人指出，当前经济持续稳定恢复，但外部环境依然复杂严峻，稳健的货币政策要更加灵活适度、精准导向，\
        综合运用多种货币政策工具，保持货币供应量和社会融资规模增速同名义经济增速基本匹配，支持实体经济发展。";
    let a = fp("央行：保持流动性合理充裕", body);
    let b = fp(
        "央行称将保持流动性合理充裕 引导市场利率波动",
        &format!("（文章来源：中国证券报）{body}责任编辑：张三"),
    );
    let m = compare(&a, &b, &t).expect("a wire copy is the same story");
    assert!(
        matches!(m.rule, Rule::SimHash | Rule::BodyContainment),
        "{m:?}"
    );
    // The keys overlap, so the store would find it.
    let ka: HashSet<i64> = candidate_keys(&a, &t).into_iter().collect();
    assert!(candidate_keys(&b, &t).iter().any(|k| ka.contains(k)));
}

#[test]
fn same_template_different_day_is_not_merged() {
    let t = Thresholds::default();
    let a = fp(
        "沪深两市成交额连续第5个交易日突破8000亿元",
        "截至12月1日收盘，沪深两市成交额合计8735亿元，连续第5个交易日突破8000亿元。",
    );
    let b = fp(
        "沪深两市成交额连续第6个交易日突破8000亿元",
        "截至12月2日收盘，沪深两市成交额合计9012亿元，连续第6个交易日突破8000亿元。",
    );
    assert_eq!(compare(&a, &b, &t), None);
}

#[test]
fn english_rewrite_matches_and_unrelated_does_not() {
    let t = Thresholds::default();
    let a = fp(
        "Acme Corp wins $58.7 million smart-park contract",
        "Acme Corp said on Tuesday its wholly owned unit won a $58.7 million contract to build a \
         smart industrial park in Suzhou, the company's largest order this year.",
    );
    let b = fp(
        "Acme wins $58.7 million contract for Suzhou smart park",
        "Acme Corp's wholly owned unit has won a $58.7 million contract to build a smart industrial \
         park in Suzhou, the company said on Tuesday. It is Acme's largest order this year.",
    );
    assert!(compare(&a, &b, &t).is_some());
    let c = fp(
        "Acme Corp names new chief financial officer",
        "Acme Corp said on Tuesday it appointed Jane Doe as chief financial officer.",
    );
    assert_eq!(compare(&a, &c, &t), None);
}
