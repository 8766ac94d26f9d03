//! Properties of the JSON patch, checked with the independent `json-patch`
//! crate.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Map, Value};

use super::super::json::{diff_json, JsonOptions};
use super::super::NoControl;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|n| json!(n)),
        Just(json!(1.5)),
        "[ab/~]{0,2}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..7).prop_map(Value::Array),
            prop::collection::btree_map("[ab/~]{1,2}|id", inner.clone(), 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            // Objects with an id field, to exercise key matching.
            (0..4u8, prop::collection::btree_map("[xy]", inner, 0..3)).prop_map(|(id, m)| {
                let mut o: Map<String, Value> = m.into_iter().collect();
                o.insert("id".into(), json!(id));
                Value::Object(o)
            }),
        ]
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.next() as usize % n
        }
    }
}

fn small(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => json!(rng.below(5)),
        1 => json!("new"),
        2 => json!({"id": rng.below(4), "x": 1}),
        _ => json!([1, 2]),
    }
}

/// Applies one random edit somewhere in `v`.
fn mutate(v: &mut Value, rng: &mut Rng) {
    // Walk down a random path, stopping at a random depth.
    let descend = rng.below(3) != 0;
    match v {
        Value::Array(a) if !a.is_empty() && descend => {
            let i = rng.below(a.len());
            mutate(&mut a[i], rng);
        }
        Value::Object(o) if !o.is_empty() && descend => {
            let i = rng.below(o.len());
            let k = o.keys().nth(i).cloned().expect("key");
            mutate(o.get_mut(&k).expect("value"), rng);
        }
        Value::Array(a) => match rng.below(4) {
            0 if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            1 if a.len() > 1 => {
                let i = rng.below(a.len() - 1);
                a.swap(i, i + 1);
            }
            _ => {
                let i = rng.below(a.len() + 1);
                let n = small(rng);
                a.insert(i, n);
            }
        },
        Value::Object(o) => match rng.below(3) {
            0 if !o.is_empty() => {
                let i = rng.below(o.len());
                let k = o.keys().nth(i).cloned().expect("key");
                o.remove(&k);
            }
            _ => {
                let k = ["a", "b/", "~c", "id", "x"][rng.below(5)];
                o.insert(k.into(), small(rng));
            }
        },
        other => *other = small(rng),
    }
}

fn check(a: &Value, b: &Value, opts: &JsonOptions) -> Result<(), TestCaseError> {
    let (ops, summary) = diff_json(a, b, opts, &mut NoControl).expect("diff");
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops.clone())).expect("a valid RFC 6902 patch");
    let mut doc = a.clone();
    json_patch::patch(&mut doc, &patch).map_err(|e| {
        TestCaseError::fail(format!(
            "patch does not apply: {e}; ops: {}",
            Value::Array(ops.clone())
        ))
    })?;
    prop_assert_eq!(&doc, b, "ops: {}", Value::Array(ops.clone()));
    prop_assert_eq!(summary.identical, a == b);
    prop_assert_eq!(ops.is_empty(), a == b);
    let count = |name: &str| ops.iter().filter(|o| o["op"] == name).count() as u64;
    prop_assert_eq!(summary.added, count("add"));
    prop_assert_eq!(summary.removed, count("remove"));
    prop_assert_eq!(summary.changed, count("replace"));
    prop_assert_eq!(
        summary.added + summary.removed + summary.changed,
        ops.len() as u64
    );
    Ok(())
}

fn options() -> impl Strategy<Value = JsonOptions> {
    any::<bool>().prop_map(|keyed| JsonOptions {
        key_fields: if keyed { vec!["id".into()] } else { vec![] },
        ..JsonOptions::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Failing seeds are kept beside this file, in `json_props.regressions`.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::with_cases(super::cases(500))
    })]

    #[test]
    fn independent_pairs_patch(a in value(), b in value(), opts in options()) {
        check(&a, &b, &opts)?;
    }

    #[test]
    fn mutated_pairs_patch(a in value(), seeds in prop::collection::vec(any::<u64>(), 1..6), opts in options()) {
        let mut b = a.clone();
        for s in seeds {
            mutate(&mut b, &mut Rng(s));
        }
        check(&a, &b, &opts)?;
    }

    #[test]
    fn identical_values_give_empty_patch(a in value(), opts in options()) {
        let (ops, s) = diff_json(&a, &a, &opts, &mut NoControl).expect("diff");
        prop_assert!(ops.is_empty());
        prop_assert!(s.identical);
    }
}

#[test]
fn arrays_shift_indices() {
    let a = json!([1, 2, 3, 4, 5, 6]);
    let b = json!([0, 1, 3, 4, 9, 6, 7]);
    check(&a, &b, &JsonOptions::default()).expect("applies");
}

#[test]
fn pointer_escaping() {
    let a = json!({"a/b": {"~c": 1}});
    let b = json!({"a/b": {"~c": 2}});
    let (ops, _) = diff_json(&a, &b, &JsonOptions::default(), &mut NoControl).expect("diff");
    assert_eq!(
        ops,
        vec![json!({"op": "replace", "path": "/a~1b/~0c", "value": 2})]
    );
}

#[test]
fn keyed_objects_are_diffed_in_place() {
    let a = json!([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]);
    let b = json!([{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]);
    let opts = JsonOptions {
        key_fields: vec!["id".into()],
        ..JsonOptions::default()
    };
    let (ops, s) = diff_json(&a, &b, &opts, &mut NoControl).expect("diff");
    assert_eq!(
        ops,
        vec![json!({"op": "replace", "path": "/1/v", "value": "B"})]
    );
    assert_eq!((s.added, s.removed, s.changed), (0, 0, 1));
}
