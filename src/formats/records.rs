//! Streaming reader of import bodies: never holds more than one record at a time, so a
//! 1,000,000-record body is read in bounded memory.

use std::fmt;
use std::io::{BufRead, BufReader, Read};

use quick_xml::events::Event;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The encodings of an import body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `{"data": [record, …], "async": {…}}`, or the records as a bare array `[record, …]`
    /// (seed 000's sample payload; `Scan::bare` says which).
    Json,
    /// `<import><data><tool>…</tool></data><async>…</async></import>`
    Xml,
    /// One record object per line.
    Ndjson,
}

/// Why a body was refused.
#[derive(thiserror::Error, Debug)]
pub enum RecordsError {
    /// Not well-formed; the message names the position.
    #[error("{0}")]
    Syntax(String),
    /// Well-formed but not an import.
    #[error("{0}")]
    Shape(String),
    /// Reading failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// More records than allowed.
    #[error("the import has more than {0} records (LONGRUN_MAX_IMPORT_RECORDS)")]
    TooMany(u64),
}

/// What a scan found besides the records.
#[derive(Debug, Default)]
pub struct Scan {
    /// Number of records.
    pub records: u64,
    /// Top-level fields other than `data` (e.g. `async`).
    pub envelope: Map<String, Value>,
    /// The JSON body was a bare array of records, not an object with `data`.
    pub bare: bool,
}

/// One record as read: a JSON object's text. JSON and NDJSON records are kept as sent (only
/// checked, never built into a tree, so a scan allocates one string a record); XML records are
/// their JSON form.
#[derive(Debug, Clone)]
pub struct Record(Box<RawValue>);

impl Record {
    /// The record's JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The record as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// A record from a value.
    pub fn from_value(v: &Value) -> Record {
        Record(serde_json::value::to_raw_value(v).expect("a JSON value serialises"))
    }
}

type OnRecord<'a> = dyn FnMut(u64, Record) -> Result<(), RecordsError> + 'a;

/// Read every record of `reader`, calling `on_record` for each in order.
pub fn scan<R: Read>(
    reader: R,
    format: BodyFormat,
    max_depth: usize,
    mut on_record: impl FnMut(u64, Record) -> Result<(), RecordsError>,
) -> Result<Scan, RecordsError> {
    match format {
        BodyFormat::Json => scan_json(reader, max_depth, &mut on_record),
        BodyFormat::Ndjson => scan_ndjson(reader, max_depth, &mut on_record),
        BodyFormat::Xml => scan_xml(reader, max_depth, &mut on_record),
    }
}

/// How deeply the arrays and objects of well-formed JSON text nest (a scalar is 0, `{}` is 1).
fn depth(text: &str) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for b in super::bounds::json_structure(text.as_bytes()) {
        match b {
            b'{' | b'[' => {
                now += 1;
                max = max.max(now);
            }
            b'}' | b']' => now = now.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// An upper bound of `depth`: the brackets that open (cheap to count, with no state to keep).
fn bracket_bound(text: &str) -> usize {
    text.bytes().filter(|b| matches!(b, b'{' | b'[')).count()
}

fn check_record(idx: u64, rec: &RawValue, max_depth: usize) -> Result<(), RecordsError> {
    if !rec.get().trim_start().starts_with('{') {
        return Err(RecordsError::Shape(format!(
            "record {} is not an object",
            idx + 1
        )));
    }
    if bracket_bound(rec.get()) > max_depth && depth(rec.get()) > max_depth {
        return Err(RecordsError::Shape(format!(
            "record {} is nested deeper than {max_depth} levels",
            idx + 1
        )));
    }
    Ok(())
}

// ----- JSON -------------------------------------------------------------------------------

struct Ctx<'a, 'b> {
    on_record: &'a mut OnRecord<'b>,
    max_depth: usize,
    count: u64,
    failure: Option<RecordsError>,
    bare: bool,
}

struct Envelope<'x, 'a, 'b>(&'x mut Ctx<'a, 'b>);
struct Records<'x, 'a, 'b>(&'x mut Ctx<'a, 'b>);

impl<'de> DeserializeSeed<'de> for Envelope<'_, '_, '_> {
    type Value = (bool, Map<String, Value>);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_, '_, '_> {
    type Value = (bool, Map<String, Value>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `data` (the records) and optionally `async`")
    }
    /// A bare array is the records themselves, read one at a time like `data`.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.bare = true;
        Records(&mut *self.0).visit_seq(seq)?;
        Ok((true, Map::new()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen_data = false;
        let mut env = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "data" => {
                    if seen_data {
                        return Err(de::Error::custom("`data` is given twice"));
                    }
                    seen_data = true;
                    map.next_value_seed(Records(&mut *self.0))?;
                }
                "async" => {
                    let v: Value = map.next_value()?;
                    env.insert(key, v);
                }
                other => {
                    let _: IgnoredAny = map.next_value()?;
                    self.0.failure = Some(RecordsError::Shape(format!(
                        "unknown field `{other}` in the request; expected `data` or `async`"
                    )));
                    return Err(de::Error::custom("unknown field"));
                }
            }
        }
        Ok((seen_data, env))
    }
}

impl<'de> DeserializeSeed<'de> for Records<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`data` as an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Box<RawValue>>()? {
            let idx = self.0.count;
            let r = check_record(idx, &v, self.0.max_depth)
                .and_then(|_| (self.0.on_record)(idx, Record(v)));
            if let Err(e) = r {
                self.0.failure = Some(e);
                return Err(de::Error::custom("record refused"));
            }
            self.0.count += 1;
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, _m: A) -> Result<(), A::Error> {
        self.0.failure = Some(RecordsError::Shape(
            "`data` must be an array of records, not an object".into(),
        ));
        Err(de::Error::custom("shape"))
    }
    fn visit_str<E: de::Error>(self, _v: &str) -> Result<(), E> {
        self.0.failure = Some(RecordsError::Shape(
            "`data` must be an array of records, not a string".into(),
        ));
        Err(E::custom("shape"))
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<(), E> {
        self.0.failure = Some(RecordsError::Shape(
            "`data` must be an array of records, not a number".into(),
        ));
        Err(E::custom("shape"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.visit_i64(v as i64)
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<(), E> {
        self.visit_i64(0)
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<(), E> {
        self.0.failure = Some(RecordsError::Shape(
            "`data` must be an array of records, not a boolean".into(),
        ));
        Err(E::custom("shape"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.failure = Some(RecordsError::Shape(
            "`data` must be an array of records, not null".into(),
        ));
        Err(E::custom("shape"))
    }
}

fn scan_json<R: Read>(
    reader: R,
    max_depth: usize,
    on_record: &mut OnRecord,
) -> Result<Scan, RecordsError> {
    let mut ctx = Ctx {
        on_record,
        max_depth,
        count: 0,
        failure: None,
        bare: false,
    };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(64 * 1024, reader));
    let res = Envelope(&mut ctx)
        .deserialize(&mut de)
        .and_then(|r| de.end().map(|_| r));
    match res {
        Ok((true, envelope)) => Ok(Scan {
            records: ctx.count,
            envelope,
            bare: ctx.bare,
        }),
        Ok((false, _)) => Err(RecordsError::Shape(
            "the request has no `data` array of records".into(),
        )),
        Err(e) => {
            if let Some(f) = ctx.failure.take() {
                return Err(f);
            }
            if e.is_io() {
                return Err(RecordsError::Io(std::io::Error::other(e.to_string())));
            }
            if e.is_data() {
                return Err(RecordsError::Shape(format!(
                    "the request must be an object with `data` (line {}, column {})",
                    e.line(),
                    e.column()
                )));
            }
            Err(RecordsError::Syntax(format!("malformed JSON: {e}")))
        }
    }
}

// ----- NDJSON -----------------------------------------------------------------------------

fn scan_ndjson<R: Read>(
    reader: R,
    max_depth: usize,
    on_record: &mut OnRecord,
) -> Result<Scan, RecordsError> {
    let mut r = BufReader::with_capacity(64 * 1024, reader);
    let mut line = String::new();
    let mut n = 0u64;
    let mut lineno = 0u64;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        lineno += 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let v: Box<RawValue> = serde_json::from_str(t)
            .map_err(|e| RecordsError::Syntax(format!("line {lineno}: malformed JSON: {e}")))?;
        check_record(n, &v, max_depth)?;
        on_record(n, Record(v))?;
        n += 1;
    }
    Ok(Scan {
        records: n,
        envelope: Map::new(),
        bare: false,
    })
}

// ----- XML --------------------------------------------------------------------------------

/// A tiny tree for one record (or the `async` element) at a time.
#[derive(Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

fn node_value(n: Node, list_fields: &[&str]) -> Value {
    if n.children.is_empty() {
        let t = n.text.trim();
        return if list_fields.contains(&n.name.as_str()) && t.is_empty() {
            Value::Array(vec![])
        } else {
            Value::String(n.text)
        };
    }
    if list_fields.contains(&n.name.as_str()) {
        return Value::Array(n.children.into_iter().map(|c| node_value(c, &[])).collect());
    }
    let mut m = Map::new();
    for c in n.children {
        let name = c.name.clone();
        let v = node_value(c, list_fields);
        match m.get_mut(&name) {
            Some(Value::Array(a)) => a.push(v),
            Some(prev) => {
                let p = prev.take();
                *prev = Value::Array(vec![p, v]);
            }
            None => {
                m.insert(name, v);
            }
        }
    }
    Value::Object(m)
}

fn typed(v: Value) -> Value {
    match v {
        Value::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, typed(v))).collect()),
        other => other,
    }
}

/// Text outside a record or the `async` element: the request's elements hold elements only.
fn stray_text(text: &str) -> RecordsError {
    let shown: String = text.trim().chars().take(40).collect();
    RecordsError::Shape(format!(
        "text `{shown}` is not allowed here; records go in `<data><tool>…</tool></data>`"
    ))
}

fn scan_xml<R: Read>(
    reader: R,
    max_depth: usize,
    on_record: &mut OnRecord,
) -> Result<Scan, RecordsError> {
    let mut xr = quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, reader));
    xr.config_mut().trim_text(false);
    let mut buf = Vec::new();
    // Path of open element names above the current record; `stack` holds the record being built.
    let mut level = 0usize;
    let mut stack: Vec<Node> = Vec::new();
    let mut n = 0u64;
    let mut envelope = Map::new();
    let mut in_data = false;
    let mut saw_data = false;
    let pos_err = |xr: &quick_xml::Reader<BufReader<R>>, e: &dyn fmt::Display| {
        RecordsError::Syntax(format!(
            "malformed XML at byte {}: {e}",
            xr.buffer_position()
        ))
    };
    loop {
        let ev = xr.read_event_into(&mut buf).map_err(|e| pos_err(&xr, &e))?;
        match ev {
            Event::DocType(_) => {
                return Err(RecordsError::Shape(
                    "document type declarations and entities are not accepted".into(),
                ))
            }
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                level += 1;
                if level > max_depth + 3 {
                    return Err(RecordsError::Shape(format!(
                        "XML nested deeper than {} levels",
                        max_depth + 3
                    )));
                }
                match level {
                    1 => {}
                    2 => match name.as_str() {
                        "data" => {
                            in_data = true;
                            saw_data = true;
                        }
                        "async" => stack.push(Node {
                            name,
                            ..Default::default()
                        }),
                        other => {
                            return Err(RecordsError::Shape(format!(
                            "unknown element `{other}` in the request; expected `data` or `async`"
                        )))
                        }
                    },
                    _ => stack.push(Node {
                        name,
                        ..Default::default()
                    }),
                }
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match level + 1 {
                    1 => {
                        return Err(RecordsError::Shape(
                            "the request has no `data` element".into(),
                        ))
                    }
                    2 if name == "data" => saw_data = true,
                    2 if name == "async" => {
                        envelope.insert("async".into(), Value::Object(Map::new()));
                    }
                    2 => {
                        return Err(RecordsError::Shape(format!(
                            "unknown element `{name}` in the request; expected `data` or `async`"
                        )))
                    }
                    3 if in_data => {
                        on_record(n, Record::from_value(&Value::Object(Map::new())))?;
                        n += 1;
                    }
                    _ => {
                        if let Some(top) = stack.last_mut() {
                            top.children.push(Node {
                                name,
                                ..Default::default()
                            });
                        }
                    }
                }
            }
            Event::Text(t) => {
                let s = t.xml_content().map_err(|e| pos_err(&xr, &e))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(stray_text(&s)),
                }
            }
            Event::CData(t) => match stack.last_mut() {
                Some(top) => top.text.push_str(&String::from_utf8_lossy(&t)),
                None => return Err(stray_text(&String::from_utf8_lossy(&t))),
            },
            Event::GeneralRef(r) => {
                let name = String::from_utf8_lossy(&r).into_owned();
                let ch = match name.as_str() {
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "amp" => "&".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    _ => match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => {
                            return Err(RecordsError::Syntax(format!("unknown entity `&{name};`")))
                        }
                    },
                };
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&ch),
                    None => return Err(stray_text(&ch)),
                }
            }
            Event::End(_) => {
                if level == 2 && in_data {
                    in_data = false;
                } else if level >= 2 {
                    let done = stack.pop().unwrap_or_default();
                    if level == 2 {
                        envelope.insert("async".into(), typed(node_value(done, &[])));
                    } else if level == 3 && in_data {
                        let mut v = node_value(done, &["features"]);
                        if v.is_string() {
                            v = Value::Object(Map::new());
                        }
                        on_record(n, Record::from_value(&v))?;
                        n += 1;
                    } else if let Some(parent) = stack.last_mut() {
                        parent.children.push(done);
                    }
                }
                level -= 1;
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if level != 0 {
        return Err(RecordsError::Syntax(
            "malformed XML: the document ends inside an element".into(),
        ));
    }
    if !saw_data {
        return Err(RecordsError::Shape(
            "the request has no `data` element".into(),
        ));
    }
    Ok(Scan {
        records: n,
        envelope,
        bare: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;
    use serde_json::json;

    fn collect(body: &str, f: BodyFormat) -> Result<(Vec<Value>, Scan), RecordsError> {
        let mut out = Vec::new();
        let s = scan(body.as_bytes(), f, 16, |_, v| {
            out.push(v.value());
            Ok(())
        })?;
        Ok((out, s))
    }

    #[test]
    fn depth_of_text() {
        for (text, want) in [
            ("1", 0),
            ("{}", 1),
            (r#"{"a":[1,{"b":[]}]}"#, 4),
            (r#"{"a":"[{\"[{","b":"\\"}"#, 1),
            (r#"[[],[[]]]"#, 3),
        ] {
            assert_eq!(depth(text), want, "{text}");
        }
    }

    #[test]
    fn records_are_kept_as_sent() {
        let body = r#"{"data":[{"tool_id":"V1", "n": [1, 2]}]}"#;
        let mut texts = Vec::new();
        scan(body.as_bytes(), BodyFormat::Json, 16, |_, r| {
            texts.push(r.text().to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(texts, [r#"{"tool_id":"V1", "n": [1, 2]}"#]);
        let deep = r#"{"data":[{"a":[[[[[[]]]]]]}]}"#;
        let err = scan(deep.as_bytes(), BodyFormat::Json, 4, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn three_encodings_agree() {
        let j = r#"{"async":{"keepResult":false},"data":[{"tool_id":"V1","features":["a","b"]},{"tool_id":"V2","features":[]}]}"#;
        let x = "<import><data><tool><tool_id>V1</tool_id><features><feature>a</feature><feature>b</feature></features></tool>\
                 <tool><tool_id>V2</tool_id><features/></tool></data><async><keepResult>false</keepResult></async></import>";
        let n = "{\"tool_id\":\"V1\",\"features\":[\"a\",\"b\"]}\n\n{\"tool_id\":\"V2\",\"features\":[]}\n";
        let (a, sa) = collect(j, BodyFormat::Json).unwrap();
        let (b, sb) = collect(x, BodyFormat::Xml).unwrap();
        let (c, _) = collect(n, BodyFormat::Ndjson).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(sa.envelope, sb.envelope);
        assert_eq!(sa.envelope["async"], json!({"keepResult": false}));
    }

    #[test]
    fn a_bare_array_is_the_records() {
        let bare = r#"[{"tool_id":"V1"},{"tool_id":"V2","features":["a"]}]"#;
        let wrapped = r#"{"data":[{"tool_id":"V1"},{"tool_id":"V2","features":["a"]}]}"#;
        let (a, sa) = collect(bare, BodyFormat::Json).unwrap();
        let (b, sb) = collect(wrapped, BodyFormat::Json).unwrap();
        assert_eq!(a, b);
        assert_eq!(sa.records, 2);
        assert!(sa.bare && !sb.bare);
        assert!(sa.envelope.is_empty());
        assert!(collect("[1]", BodyFormat::Json)
            .unwrap_err()
            .to_string()
            .contains("not an object"));
        assert!(collect("\"x\"", BodyFormat::Json).is_err());
    }

    #[test]
    fn refusals() {
        for (body, f, want) in [
            (r#"{"data":[1]}"#, BodyFormat::Json, "not an object"),
            (r#"{"data":{}}"#, BodyFormat::Json, "must be an array"),
            (r#"{"dta":[]}"#, BodyFormat::Json, "unknown field `dta`"),
            (r#"{"async":{}}"#, BodyFormat::Json, "no `data`"),
            (r#"{"data":[{}],"#, BodyFormat::Json, "malformed JSON"),
            (r#"{"data":[]} x"#, BodyFormat::Json, "malformed JSON"),
            ("{\"a\":1}\n{oops", BodyFormat::Ndjson, "line 2"),
            (
                "<!DOCTYPE x [<!ENTITY a \"b\">]><import><data/></import>",
                BodyFormat::Xml,
                "document type",
            ),
            (
                "<import><data><tool></data></import>",
                BodyFormat::Xml,
                "malformed XML",
            ),
            (
                "<import><other/></import>",
                BodyFormat::Xml,
                "unknown element",
            ),
        ] {
            let err = collect(body, f).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn streams_before_the_end() {
        struct Counting<'a>(&'a [u8], usize);
        impl Read for Counting<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = out.len().min(self.0.len() - self.1).min(4096);
                out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let mut body = String::from("{\"data\":[");
        for i in 0..50_000 {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!("{{\"tool_id\":\"T{i}\"}}"));
        }
        body.push_str("]}");
        let reader = Counting(body.as_bytes(), 0);
        let total = body.len();
        let served = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let mut first_at = None;
        let r = reader;
        let s2 = served.clone();
        struct Spy<'a>(Counting<'a>, std::rc::Rc<std::cell::Cell<usize>>);
        impl Read for Spy<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.read(out)?;
                self.1.set(self.1.get() + n);
                Ok(n)
            }
        }
        let s = scan(Spy(r, s2), BodyFormat::Json, 16, |i, _| {
            if i == 0 {
                first_at = Some(served.get());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(s.records, 50_000);
        assert!(first_at.unwrap() < total / 4);
    }

    #[test]
    fn text_outside_records_is_refused() {
        for body in [
            "<import><data>6</data></import>",
            "<import>words<data/></import>",
            "<import><data><![CDATA[x]]></data></import>",
            "<import><data>&amp;</data></import>",
        ] {
            let e = collect(body, BodyFormat::Xml).unwrap_err();
            assert!(e.to_string().contains("not allowed here"), "{body}: {e}");
        }
        let (records, _) =
            collect("<import>\n  <data>\n  </data>\n</import>", BodyFormat::Xml).unwrap();
        assert!(records.is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1500))]

        /// Any bytes in any of the three formats: records or an error, never a panic.
        #[test]
        fn scan_takes_any_bytes(
            bytes in proptest::prop_oneof![
                proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..200),
                "[<>/a-z_ =\"{}\\[\\]:,0-9\n-]{0,160}".prop_map(String::into_bytes),
            ],
            which in 0usize..3,
        ) {
            let f = [BodyFormat::Json, BodyFormat::Ndjson, BodyFormat::Xml][which];
            let _ = scan(&bytes[..], f, 8, |_, v| {
                assert!(v.value().is_object());
                Ok(())
            });
        }
    }
}
