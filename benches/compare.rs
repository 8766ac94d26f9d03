//! Performance check: two ~10 MB documents with ~1 % of items changed.
//!
//! `cargo bench --bench compare` runs every case in its own process (so that peak RSS is per
//! case) and prints a markdown table.

use std::process::Command;
use std::time::Instant;

use longrun::compare::{
    diff_json, diff_xml, parse_json, JsonOptions, NoControl, XmlDoc, XmlOptions,
};

const ITEMS: usize = 70_000;

/// Deterministic PRNG.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, per_10k: u64) -> bool {
        self.next() % 10_000 < per_10k
    }
}

/// What happens to item `i` in document B.
#[derive(Clone, Copy, PartialEq)]
enum Edit {
    Keep,
    Attr,
    Text,
    Delete,
    InsertBefore,
}

fn edits() -> Vec<Edit> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    (0..ITEMS)
        .map(|_| {
            if rng.chance(40) {
                Edit::Attr
            } else if rng.chance(30) {
                Edit::Text
            } else if rng.chance(15) {
                Edit::Delete
            } else if rng.chance(15) {
                Edit::InsertBefore
            } else {
                Edit::Keep
            }
        })
        .collect()
}

fn xml_item(out: &mut String, id: usize, price: &str, desc: &str) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "  <item id=\"{id}\" sku=\"S{id:06}\" price=\"{price}\">\n    \
         <name>Product {id}</name>\n    <desc>{desc} {id} &amp; co</desc>\n    \
         <tag>t{}</tag>\n  </item>\n",
        id % 17
    );
}

fn xml_docs() -> (String, String) {
    let (mut a, mut b) = (String::new(), String::new());
    for d in [&mut a, &mut b] {
        d.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<catalog version=\"1\">\n");
    }
    for (i, e) in edits().into_iter().enumerate() {
        let price = format!("{}.{:02}", i % 500, i % 100);
        xml_item(&mut a, i, &price, "A description");
        match e {
            Edit::Keep => xml_item(&mut b, i, &price, "A description"),
            Edit::Attr => xml_item(&mut b, i, "999.99", "A description"),
            Edit::Text => xml_item(&mut b, i, &price, "New description"),
            Edit::Delete => {}
            Edit::InsertBefore => {
                xml_item(&mut b, 1_000_000 + i, "1.00", "A new item");
                xml_item(&mut b, i, &price, "A description");
            }
        }
    }
    for d in [&mut a, &mut b] {
        d.push_str("</catalog>\n");
    }
    (a, b)
}

fn json_item(out: &mut String, id: usize, price: &str, desc: &str) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "  {{\"id\": {id}, \"sku\": \"S{id:06}\", \"price\": {price}, \
         \"name\": \"Product {id}\", \"desc\": \"{desc} {id} & co\", \
         \"tags\": [\"t{}\", \"x\"]}}",
        id % 17
    );
}

fn json_docs() -> (String, String) {
    let (mut a, mut b) = (
        String::from("{\"items\": [\n"),
        String::from("{\"items\": [\n"),
    );
    let (mut first_a, mut first_b) = (true, true);
    let sep = |d: &mut String, first: &mut bool| {
        if !*first {
            d.push_str(",\n");
        }
        *first = false;
    };
    for (i, e) in edits().into_iter().enumerate() {
        let price = format!("{}.{:02}", i % 500, i % 100 + 1);
        sep(&mut a, &mut first_a);
        json_item(&mut a, i, &price, "A description");
        match e {
            Edit::Delete => continue,
            Edit::InsertBefore => {
                sep(&mut b, &mut first_b);
                json_item(&mut b, 1_000_000 + i, "1.5", "A new item");
            }
            _ => {}
        }
        sep(&mut b, &mut first_b);
        match e {
            Edit::Attr => json_item(&mut b, i, "999.99", "A description"),
            Edit::Text => json_item(&mut b, i, &price, "New description"),
            _ => json_item(&mut b, i, &price, "A description"),
        }
    }
    a.push_str("\n], \"version\": 1}\n");
    b.push_str("\n], \"version\": 1}\n");
    (a, b)
}

/// Cancels from its `at`-th poll on; counts the polls and remembers when it first said yes.
struct CancelAt {
    at: u64,
    calls: std::cell::Cell<u64>,
    fired: std::cell::Cell<Option<Instant>>,
}

impl CancelAt {
    fn new(at: u64) -> CancelAt {
        CancelAt {
            at,
            calls: std::cell::Cell::new(0),
            fired: std::cell::Cell::new(None),
        }
    }
}

impl longrun::compare::Control for CancelAt {
    fn cancelled(&self) -> bool {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() < self.at {
            return false;
        }
        if self.fired.get().is_none() {
            self.fired.set(Some(Instant::now()));
        }
        true
    }
    fn progress(&mut self, _done: u64, _total: u64) {}
}

/// Runs `f` once to count how often it polls for a cancel, then again with a Control that
/// cancels at the middle poll (halfway through the work, whatever the machine's speed); returns
/// the latency (ms) from the cancel request to the return.
fn cancel_latency(mut f: impl FnMut(&mut CancelAt) -> bool) -> f64 {
    let mut count = CancelAt::new(u64::MAX);
    assert!(!f(&mut count), "the counting run was cancelled");
    let mut ctl = CancelAt::new((count.calls.get() / 2).max(1));
    let cancelled = f(&mut ctl);
    let end = Instant::now();
    assert!(cancelled, "the run was not cancelled");
    (end - ctl.fired.get().expect("a cancel was requested")).as_secs_f64() * 1000.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn run_case(case: &str) {
    let keyed = case.ends_with("-keyed");
    let (a, b, rss_inputs);
    let (pa, pb, diff, out_len, summary);
    if case.starts_with("xml") {
        (a, b) = xml_docs();
        rss_inputs = peak_rss_mb();
        let opts = XmlOptions {
            key_attributes: if keyed { vec!["id".into()] } else { vec![] },
            ..XmlOptions::default()
        };
        let t = Instant::now();
        let da = XmlDoc::parse(a.as_bytes(), &opts, &mut NoControl).expect("parse A");
        pa = ms(t);
        let t = Instant::now();
        let db = XmlDoc::parse(b.as_bytes(), &opts, &mut NoControl).expect("parse B");
        pb = ms(t);
        let t = Instant::now();
        let mut out = Vec::new();
        summary = diff_xml(&da, &db, &opts, &mut NoControl, &mut out).expect("diff");
        diff = ms(t);
        out_len = out.len();
        let lat = cancel_latency(|ctl| {
            matches!(
                diff_xml(&da, &db, &opts, ctl, &mut std::io::sink()),
                Err(longrun::compare::DiffError::Cancelled)
            )
        });
        eprintln!("{case}: cancel requested mid-diff took effect after {lat:.1} ms");
        eprintln!(
            "{case}: tree heap A {:.1} MB ({:.1}x input), nodes {}",
            da.heap_size() as f64 / 1e6,
            da.heap_size() as f64 / a.len() as f64,
            da.node_count()
        );
    } else {
        (a, b) = json_docs();
        rss_inputs = peak_rss_mb();
        let opts = JsonOptions {
            key_fields: if keyed { vec!["id".into()] } else { vec![] },
            ..JsonOptions::default()
        };
        let t = Instant::now();
        let va = parse_json(a.as_bytes(), &opts, &mut NoControl).expect("parse A");
        pa = ms(t);
        let t = Instant::now();
        let vb = parse_json(b.as_bytes(), &opts, &mut NoControl).expect("parse B");
        pb = ms(t);
        let t = Instant::now();
        let (ops, s) = diff_json(&va, &vb, &opts, &mut NoControl).expect("diff");
        let mut out = Vec::new();
        longrun::compare::write_patch(&ops, &mut out).expect("write");
        diff = ms(t);
        summary = s;
        out_len = out.len();
        let lat = cancel_latency(|ctl| {
            matches!(
                diff_json(&va, &vb, &opts, ctl),
                Err(longrun::compare::DiffError::Cancelled)
            )
        });
        eprintln!("{case}: cancel requested mid-diff took effect after {lat:.1} ms");
    }
    println!(
        "| {case} | {:.1} + {:.1} MB | {pa:.0} | {pb:.0} | {diff:.0} | {:.0} | {:.0} ({:.0} inputs) | +{} -{} ~{} | {:.2} MB |",
        a.len() as f64 / 1e6,
        b.len() as f64 / 1e6,
        pa + pb + diff,
        peak_rss_mb(),
        rss_inputs,
        summary.added,
        summary.removed,
        summary.changed,
        out_len as f64 / 1e6,
    );
}

fn main() {
    let cases = ["xml", "xml-keyed", "json", "json-keyed"];
    if let Some(case) = std::env::args()
        .skip(1)
        .find(|a| cases.contains(&a.as_str()))
    {
        run_case(&case);
        return;
    }
    println!(
        "| case | input A + B | parse A ms | parse B ms | diff+write ms | total ms | peak RSS MB | summary | output |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let exe = std::env::current_exe().expect("current exe");
    for case in cases {
        let status = Command::new(&exe).arg(case).status().expect("run case");
        assert!(status.success(), "{case} failed");
    }
}
