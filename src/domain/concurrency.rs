//! How many jobs may run at once, across every instance: per tenant
//! (`LONGRUN_TENANT_CONCURRENCY`, the same number for each) and per operation
//! (`LONGRUN_OPERATION_CONCURRENCY`, e.g. `compare=2,import=4`). The claim holds them
//! (`store/run.rs`); this is only what they are.
//!
//! Both count the work lane's jobs between their claim and their end (STARTED, PROCESSING,
//! SAVING). The control lane (bulk actions) is neither counted nor held back: a tenant at its
//! cap can still cancel what it has queued.

use std::collections::BTreeMap;

/// The running jobs allowed at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Concurrency {
    /// Per tenant; `None` is no limit.
    pub tenant: Option<u32>,
    /// Per operation, for the operations named.
    pub per_operation: BTreeMap<String, u32>,
}

/// One limit that applies to a job, and what it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cap {
    /// Jobs of the job's tenant (the jobs stored without one are the open tenant's).
    Tenant(String, u32),
    /// Jobs of the job's operation.
    Operation(String, u32),
}

impl Cap {
    /// A name that is the same for every instance that holds this limit, and no other one's:
    /// claims of the same tenant or operation are checked one at a time by it.
    pub fn key(&self) -> String {
        match self {
            Cap::Tenant(t, _) => format!("longrun:tenant:{t}"),
            Cap::Operation(o, _) => format!("longrun:operation:{o}"),
        }
    }

    /// How many may run.
    pub fn limit(&self) -> u32 {
        match self {
            Cap::Tenant(_, n) | Cap::Operation(_, n) => *n,
        }
    }
}

impl Concurrency {
    /// Read the two settings: a whole number above 0 (or empty: no limit), and
    /// `operation=n` items separated by commas.
    pub fn parse(tenant: &str, operations: &str) -> Result<Concurrency, String> {
        let tenant = match tenant.trim() {
            "" => None,
            t => Some(positive(t).map_err(|e| format!("tenant_concurrency: {e}"))?),
        };
        let mut per_operation = BTreeMap::new();
        for item in operations
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let (op, n) = item.split_once('=').ok_or_else(|| {
                format!("operation_concurrency: `{item}` is not operation=number (as compare=2)")
            })?;
            let op = op.trim();
            if op.is_empty() {
                return Err(format!(
                    "operation_concurrency: `{item}` names no operation"
                ));
            }
            let n =
                positive(n.trim()).map_err(|e| format!("operation_concurrency: `{item}`: {e}"))?;
            if per_operation.insert(op.to_string(), n).is_some() {
                return Err(format!("operation_concurrency: `{op}` is named twice"));
            }
        }
        Ok(Concurrency {
            tenant,
            per_operation,
        })
    }

    /// No limit at all.
    pub fn is_unlimited(&self) -> bool {
        self.tenant.is_none() && self.per_operation.is_empty()
    }

    /// The limits a job of `owner` and `operation` is held to, in the order their keys are
    /// taken (always the same order, so two claims never wait for each other in a circle).
    pub fn caps_of(&self, owner: Option<&str>, operation: &str) -> Vec<Cap> {
        let mut caps = Vec::new();
        if crate::domain::Lane::of(operation) == crate::domain::Lane::Control {
            return caps;
        }
        if let Some(n) = self.per_operation.get(operation) {
            caps.push(Cap::Operation(operation.to_string(), *n));
        }
        if let Some(n) = self.tenant {
            let owner = owner.unwrap_or(crate::domain::access::OPEN_TENANT);
            caps.push(Cap::Tenant(owner.to_string(), n));
        }
        caps.sort_by_key(Cap::key);
        caps
    }
}

fn positive(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{s}` is not a whole number from 1 to {}",
            u32::MAX
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_settings() {
        let c = Concurrency::parse(" 3 ", "compare=2, import = 4,").unwrap();
        assert_eq!(c.tenant, Some(3));
        assert_eq!(c.per_operation["compare"], 2);
        assert_eq!(c.per_operation["import"], 4);
        assert!(!c.is_unlimited());
        assert!(Concurrency::parse("", "").unwrap().is_unlimited());
    }

    #[test]
    fn refuses_what_it_cannot_hold() {
        for (t, o) in [
            ("0", ""),
            ("-1", ""),
            ("two", ""),
            ("", "compare"),
            ("", "compare=0"),
            ("", "=2"),
            ("", "compare=2,compare=3"),
            ("", "compare=x"),
        ] {
            assert!(Concurrency::parse(t, o).is_err(), "{t:?} {o:?}");
        }
    }

    #[test]
    fn caps_of_a_job_in_key_order_and_none_for_the_control_lane() {
        let c = Concurrency::parse("2", "noop=1").unwrap();
        let caps = c.caps_of(Some("blue"), "noop");
        assert_eq!(
            caps,
            vec![
                Cap::Operation("noop".into(), 1),
                Cap::Tenant("blue".into(), 2)
            ]
        );
        assert_eq!(caps[0].key(), "longrun:operation:noop");
        assert_eq!(caps[1].key(), "longrun:tenant:blue");
        assert_eq!(
            c.caps_of(None, "compare"),
            vec![Cap::Tenant(crate::domain::access::OPEN_TENANT.into(), 2)]
        );
        assert!(c
            .caps_of(Some("blue"), crate::domain::lane::BULK)
            .is_empty());
    }
}
