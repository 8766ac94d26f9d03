//! JSON: parsing with depth limits and RFC 6902 JSON Patch generation.
//!
//! Objects are compared as maps (key order is irrelevant); the code works the
//! same whether or not serde_json's `preserve_order` feature is enabled.
//! Arrays are aligned with a sequence diff over element hashes, so inserted
//! and deleted elements become `add` / `remove` at the right (shifting)
//! indices; the patch applies sequentially as RFC 6902 requires.

use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use similar::{capture_diff_slices_deadline, Algorithm, DiffOp};

use super::hash::{finish, hash_bytes, mix};
use super::ticker::Ticker;
use super::{Control, DiffError, Limits, Position, Summary};

/// Time budget of one sequence diff (see the XML module).
const DIFF_TIME: Duration = Duration::from_millis(300);

/// Options of JSON parsing and comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Object fields (e.g. `id`) that identify an object among the elements
    /// of an array: objects with equal key values are matched and diffed
    /// field by field.
    pub key_fields: Vec<String>,
    /// `max_depth` counts nested arrays/objects. Keep it at most a few
    /// thousand: parsing and diffing recurse once per level.
    pub limits: Limits,
}

/// Parses one JSON document. Nesting deeper than `max_depth` is refused by a
/// streaming pre-scan before anything recursive runs. Progress is in bytes.
pub fn parse_json(
    bytes: &[u8],
    opts: &JsonOptions,
    ctl: &mut dyn Control,
) -> Result<Value, DiffError> {
    let bom = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let body = &bytes[bom..];
    let mut ticker = Ticker::new(ctl, bytes.len() as u64);
    ticker.check()?;
    prescan(bytes, bom, &opts.limits, &mut ticker)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    de.disable_recursion_limit();
    let mut stream = de.into_iter::<Value>();
    let value = match stream.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(serde_error(bytes, bom, &e)),
        None => {
            return Err(DiffError::parse_at(
                bytes,
                bytes.len(),
                "empty document: expected a JSON value",
            ));
        }
    };
    let end = bom + stream.byte_offset();
    if let Some(extra) = bytes[end..].iter().position(|c| !c.is_ascii_whitespace()) {
        return Err(DiffError::parse_at(
            bytes,
            end + extra,
            "trailing characters after the JSON value",
        ));
    }
    ticker.done_at(bytes.len() as u64);
    ticker.check()?;
    ticker.finish();
    Ok(value)
}

fn serde_error(bytes: &[u8], bom: usize, e: &serde_json::Error) -> DiffError {
    let msg = e.to_string();
    // serde_json appends " at line L column C"; we report our own position.
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    if e.line() == 0 {
        return DiffError::Parse {
            position: None,
            message: msg,
        };
    }
    let body = &bytes[bom..];
    let mut line_start = 0;
    for _ in 1..e.line() {
        match body[line_start..].iter().position(|&c| c == b'\n') {
            Some(i) => line_start += i + 1,
            None => break,
        }
    }
    let offset = (line_start + e.column().saturating_sub(1)).min(body.len());
    DiffError::Parse {
        position: Some(Position::at(bytes, bom + offset)),
        message: msg,
    }
}

/// Checks nesting depth and (approximate) node count without recursion.
fn prescan(
    bytes: &[u8],
    from: usize,
    limits: &Limits,
    ticker: &mut Ticker<'_>,
) -> Result<(), DiffError> {
    let mut depth = 0usize;
    let mut nodes = 1usize;
    let mut i = from;
    let mut next_tick = i + (1 << 20);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string body.
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                nodes += 1;
                if depth > limits.max_depth {
                    return Err(DiffError::refused(format!(
                        "{}: arrays/objects are nested deeper than {} levels",
                        Position::at(bytes, i),
                        limits.max_depth
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' => nodes += 1,
            _ => {}
        }
        i += 1;
        if i >= next_tick {
            next_tick = i + (1 << 20);
            ticker.done_at(i as u64);
            ticker.check()?;
        }
    }
    if nodes > limits.max_nodes {
        return Err(DiffError::refused(format!(
            "the document has more than {} values",
            limits.max_nodes
        )));
    }
    Ok(())
}

/// Serializes patch operations as a JSON array.
pub fn write_patch(ops: &[Value], out: &mut dyn Write) -> Result<(), DiffError> {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    serde_json::to_writer(&mut w, ops).map_err(std::io::Error::from)?;
    w.flush()?;
    Ok(())
}

/// Computes an RFC 6902 patch (`add`, `remove`, `replace` only) turning `a`
/// into `b`. Summary: added = add ops, removed = remove ops, changed =
/// replace ops, identical = empty patch.
pub fn diff_json(
    a: &Value,
    b: &Value,
    opts: &JsonOptions,
    ctl: &mut dyn Control,
) -> Result<(Vec<Value>, Summary), DiffError> {
    let mut ticker = Ticker::new(ctl, 0);
    ticker.check()?;
    let total = count(a, opts.limits.max_depth, &mut ticker)?
        + count(b, opts.limits.max_depth, &mut ticker)?;
    ticker.set_total(total);
    let mut cx = Ctx {
        keys: &opts.key_fields,
        ticker,
        ops: Vec::new(),
        summary: Summary::default(),
        path: String::new(),
    };
    cx.diff(a, b)?;
    cx.summary.identical = cx.ops.is_empty();
    cx.ticker.finish();
    Ok((cx.ops, cx.summary))
}

/// Counts values, refusing nesting deeper than `max_depth` (iteratively).
fn count(v: &Value, max_depth: usize, ticker: &mut Ticker<'_>) -> Result<u64, DiffError> {
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    let mut n = 0u64;
    while let Some((v, depth)) = stack.pop() {
        n += 1;
        ticker.work(1)?;
        let is_container = matches!(v, Value::Array(_) | Value::Object(_));
        if is_container && depth + 1 > max_depth {
            return Err(DiffError::refused(format!(
                "arrays/objects are nested deeper than {max_depth} levels"
            )));
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|k| (k, depth + 1))),
            Value::Object(o) => stack.extend(o.values().map(|k| (k, depth + 1))),
            _ => {}
        }
    }
    Ok(n)
}

const T_NULL: u64 = 0x01;
const T_TRUE: u64 = 0x02;
const T_FALSE: u64 = 0x03;
const T_NUM: u64 = 0x04;
const T_STR: u64 = 0x05;
const T_ARR: u64 = 0x06;
const T_OBJ: u64 = 0x07;
const T_KEY: u64 = 0x08;
const T_MISSING: u64 = 0x09;
const C_SCALAR: u64 = 0x0a;

struct Ctx<'k, 'c> {
    keys: &'k [String],
    ticker: Ticker<'c>,
    ops: Vec<Value>,
    summary: Summary,
    /// JSON pointer of the value being compared.
    path: String,
}

fn push_key(path: &mut String, key: &str) {
    path.push('/');
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn push_index(path: &mut String, i: usize) {
    use std::fmt::Write as _;
    let _ = write!(path, "/{i}");
}

impl Ctx<'_, '_> {
    fn emit(&mut self, op: &str, value: Option<&Value>) {
        let mut m = Map::new();
        m.insert("op".into(), Value::String(op.into()));
        m.insert("path".into(), Value::String(self.path.clone()));
        if let Some(v) = value {
            m.insert("value".into(), v.clone());
        }
        match op {
            "add" => self.summary.added += 1,
            "remove" => self.summary.removed += 1,
            _ => self.summary.changed += 1,
        }
        self.ops.push(Value::Object(m));
    }

    fn emit_at(&mut self, op: &str, index: usize, value: Option<&Value>) {
        let len = self.path.len();
        push_index(&mut self.path, index);
        self.emit(op, value);
        self.path.truncate(len);
    }

    fn hash(&mut self, v: &Value) -> Result<u64, DiffError> {
        self.ticker.done(1)?;
        Ok(match v {
            Value::Null => T_NULL,
            Value::Bool(true) => T_TRUE,
            Value::Bool(false) => T_FALSE,
            Value::Number(n) => {
                let bits = if let Some(u) = n.as_u64() {
                    u
                } else if let Some(i) = n.as_i64() {
                    i as u64
                } else {
                    n.as_f64().map_or(0, f64::to_bits)
                };
                finish(mix(T_NUM, bits))
            }
            Value::String(s) => mix(T_STR, hash_bytes(s.as_bytes())),
            Value::Array(a) => {
                let mut h = mix(T_ARR, a.len() as u64);
                for e in a {
                    h = mix(h, self.hash(e)?);
                }
                finish(h)
            }
            Value::Object(o) => {
                // Order-independent: a sum of per-entry hashes.
                let mut sum = 0u64;
                for (k, e) in o {
                    sum = sum.wrapping_add(finish(mix(hash_bytes(k.as_bytes()), self.hash(e)?)));
                }
                finish(mix(mix(T_OBJ, o.len() as u64), sum))
            }
        })
    }

    fn key_hash(&self, v: &Value) -> Option<u64> {
        let Value::Object(o) = v else { return None };
        if self.keys.is_empty() {
            return None;
        }
        let mut h = T_KEY;
        let mut found = false;
        for k in self.keys {
            match o.get(k) {
                Some(kv) => {
                    found = true;
                    // Key values are small; hash their serialization-free form.
                    h = mix(h, key_value_hash(kv));
                }
                None => h = mix(h, T_MISSING),
            }
        }
        found.then(|| finish(h))
    }

    fn identity(&mut self, v: &Value) -> Result<u64, DiffError> {
        match self.key_hash(v) {
            Some(k) => Ok(k),
            None => self.hash(v),
        }
    }

    fn class(&self, v: &Value) -> u64 {
        match v {
            Value::Object(_) => self.key_hash(v).unwrap_or(T_OBJ),
            Value::Array(_) => T_ARR,
            _ => C_SCALAR,
        }
    }

    fn diff(&mut self, a: &Value, b: &Value) -> Result<(), DiffError> {
        self.ticker.done(2)?;
        match (a, b) {
            (Value::Object(ma), Value::Object(mb)) => {
                for (k, va) in ma {
                    let len = self.path.len();
                    push_key(&mut self.path, k);
                    match mb.get(k) {
                        Some(vb) => {
                            if va != vb {
                                self.diff(va, vb)?;
                            }
                        }
                        None => self.emit("remove", None),
                    }
                    self.path.truncate(len);
                }
                for (k, vb) in mb {
                    if !ma.contains_key(k) {
                        let len = self.path.len();
                        push_key(&mut self.path, k);
                        self.emit("add", Some(vb));
                        self.path.truncate(len);
                    }
                }
                Ok(())
            }
            (Value::Array(va), Value::Array(vb)) => self.diff_array(va, vb),
            _ => {
                if a != b {
                    self.emit("replace", Some(b));
                }
                Ok(())
            }
        }
    }

    /// Diffs two aligned elements found at index `at` of the patched array.
    fn pair(&mut self, a: &Value, b: &Value, at: usize) -> Result<(), DiffError> {
        if a == b {
            return Ok(());
        }
        let len = self.path.len();
        push_index(&mut self.path, at);
        let r = self.diff(a, b);
        self.path.truncate(len);
        r
    }

    fn diff_array(&mut self, a: &[Value], b: &[Value]) -> Result<(), DiffError> {
        let ida = a
            .iter()
            .map(|v| self.identity(v))
            .collect::<Result<Vec<u64>, _>>()?;
        let idb = b
            .iter()
            .map(|v| self.identity(v))
            .collect::<Result<Vec<u64>, _>>()?;
        let ops = capture_diff_slices_deadline(
            Algorithm::Myers,
            &ida,
            &idb,
            Some(Instant::now() + DIFF_TIME),
        );
        self.ticker.work((a.len() + b.len()) as u64)?;
        // Invariant: before each op, the patched array equals b[..cursor]
        // followed by the rest of a. (`similar` does not always report the
        // new-side index of a deletion as the cursor, so it is tracked here.)
        let mut cursor = 0;
        for op in ops {
            match op {
                DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } => {
                    for k in 0..len {
                        self.pair(&a[old_index + k], &b[new_index + k], new_index + k)?;
                    }
                    cursor = new_index + len;
                }
                DiffOp::Delete { old_len, .. } => {
                    for _ in 0..old_len {
                        self.emit_at("remove", cursor, None);
                    }
                }
                DiffOp::Insert {
                    new_index, new_len, ..
                } => {
                    for k in 0..new_len {
                        self.emit_at("add", new_index + k, Some(&b[new_index + k]));
                    }
                    cursor = new_index + new_len;
                }
                DiffOp::Replace {
                    old_index,
                    old_len,
                    new_index,
                    new_len,
                } => {
                    self.region(
                        &a[old_index..old_index + old_len],
                        &b[new_index..new_index + new_len],
                        new_index,
                    )?;
                    cursor = new_index + new_len;
                }
            }
        }
        Ok(())
    }

    /// A replaced region starting at index `base` of the patched array:
    /// elements of the same class (keyed object with equal keys, object,
    /// array, scalar) are paired in order.
    fn region(&mut self, ra: &[Value], rb: &[Value], base: usize) -> Result<(), DiffError> {
        let ca: Vec<u64> = ra.iter().map(|v| self.class(v)).collect();
        let cb: Vec<u64> = rb.iter().map(|v| self.class(v)).collect();
        let ops = capture_diff_slices_deadline(
            Algorithm::Myers,
            &ca,
            &cb,
            Some(Instant::now() + DIFF_TIME),
        );
        let mut cursor = 0;
        for op in ops {
            match op {
                DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } => {
                    for k in 0..len {
                        let at = base + new_index + k;
                        self.pair(&ra[old_index + k], &rb[new_index + k], at)?;
                    }
                    cursor = new_index + len;
                }
                DiffOp::Delete { old_len, .. } => {
                    for _ in 0..old_len {
                        self.emit_at("remove", base + cursor, None);
                    }
                }
                DiffOp::Insert {
                    new_index, new_len, ..
                } => {
                    for k in 0..new_len {
                        self.emit_at("add", base + new_index + k, Some(&rb[new_index + k]));
                    }
                    cursor = new_index + new_len;
                }
                DiffOp::Replace {
                    old_len,
                    new_index,
                    new_len,
                    ..
                } => {
                    let common = old_len.min(new_len);
                    for k in 0..common {
                        self.emit_at("replace", base + new_index + k, Some(&rb[new_index + k]));
                    }
                    for _ in common..old_len {
                        self.emit_at("remove", base + new_index + common, None);
                    }
                    for k in common..new_len {
                        self.emit_at("add", base + new_index + k, Some(&rb[new_index + k]));
                    }
                    cursor = new_index + new_len;
                }
            }
        }
        Ok(())
    }
}

/// Hash of a key field value (scalars; containers hash by their text).
fn key_value_hash(v: &Value) -> u64 {
    match v {
        Value::String(s) => mix(T_STR, hash_bytes(s.as_bytes())),
        Value::Number(n) => mix(T_NUM, hash_bytes(n.to_string().as_bytes())),
        Value::Bool(b) => mix(T_TRUE, u64::from(*b)),
        Value::Null => T_NULL,
        other => mix(T_ARR, hash_bytes(other.to_string().as_bytes())),
    }
}
