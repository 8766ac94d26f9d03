//! Who may do what: API key scopes, which input fields would claim an identity, key material,
//! and the per-key submission rate. Pure rules; the store keeps the keys, the edge applies them.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The tenant of every caller while the service runs open (no keys exist), and of jobs made
/// before tenants existed.
pub const OPEN_TENANT: &str = "default";

/// What a key may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// GET: read jobs, results, files, the catalog.
    Read,
    /// + submissions (POST), cancel, share links.
    Submit,
    /// + delete, restart, prune, bulk purge, keys, metrics.
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Scope::Read),
            "submit" => Ok(Scope::Submit),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope `{other}`: use read, submit or admin"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Submit => "submit",
            Scope::Admin => "admin",
        }
    }
}

/// The first field of a submitted `input`, at any depth, that names an identity (`owner`,
/// `tenant`, `tenantId`, `userId`, `apiKey`, `caller`; case, `_` and `-` ignored), as a path like
/// `input.filter.owner`. Who a job acts for comes from the key that submitted it, so an input that
/// tries to say it is refused rather than ignored.
pub fn identity_field(input: &serde_json::Value) -> Option<String> {
    fn is_identity(name: &str) -> bool {
        let n: String = name
            .chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .collect::<String>()
            .to_ascii_lowercase();
        matches!(
            n.as_str(),
            "owner" | "tenant" | "tenantid" | "userid" | "apikey" | "caller"
        )
    }
    fn walk(v: &serde_json::Value, path: &mut String) -> bool {
        match v {
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                if is_identity(k) || walk(v, path) {
                    return true;
                }
                path.truncate(len);
                false
            }),
            serde_json::Value::Array(a) => a.iter().enumerate().any(|(i, v)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if walk(v, path) {
                    return true;
                }
                path.truncate(len);
                false
            }),
            _ => false,
        }
    }
    let mut path = String::from("input");
    walk(input, &mut path).then_some(path)
}

/// A tenant name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_tenant(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`"
        ))
    }
}

/// A new key: (the secret shown once, its digest to store, a short prefix to recognise it by).
pub fn new_key() -> (String, String, String) {
    let bytes: [u8; 24] = rand::random();
    let secret = format!("lr_{}", super::hex(&bytes));
    let prefix = secret[..10].to_string();
    (secret.clone(), key_digest(&secret), prefix)
}

/// The stored form of a key: SHA-256, hex. Keys carry 192 random bits, so a fast digest is
/// enough; the key itself is never stored.
pub fn key_digest(secret: &str) -> String {
    super::hex(&Sha256::digest(secret.trim().as_bytes()))
}

/// A rate: `n` submissions per `per`, as `100/s`, `600/m`, `5000/h`; `0` or `off` turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub n: u32,
    pub per: Duration,
}

impl Rate {
    pub fn parse(s: &str) -> Result<Option<Rate>, String> {
        let t = s.trim();
        if t == "0" || t.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || format!("rate `{s}`: use e.g. 100/s, 600/m, 5000/h, or off");
        let (n, unit) = t.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(Rate { n, per }))
    }
}

/// A token bucket holding up to `rate.n` submissions, refilled evenly over `rate.per`.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.n),
            at: now,
        }
    }

    /// Take one token, or say how long until one is there.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let per_token = rate.per.as_secs_f64() / f64::from(rate.n);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed / per_token).min(f64::from(rate.n));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) * per_token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_fields_are_found_at_any_depth() {
        use serde_json::json;
        assert_eq!(identity_field(&json!({"uri": "/api/v1/jobs"})), None);
        assert_eq!(
            identity_field(&json!({"uri": "/api/v1/jobs", "owner": "acme"})),
            Some("input.owner".into())
        );
        assert_eq!(
            identity_field(&json!({"filter": {"Tenant_Id": "acme"}})),
            Some("input.filter.Tenant_Id".into())
        );
        assert_eq!(
            identity_field(&json!({"a": [1, {"b": {"user-id": 1}}]})),
            Some("input.a[1].b.user-id".into())
        );
        assert_eq!(identity_field(&json!({"text": "the owner said"})), None);
        assert_eq!(identity_field(&json!([0, 0, "owner"])), None);
        assert!(Scope::Admin > Scope::Submit && Scope::Submit > Scope::Read);
    }

    #[test]
    fn keys_are_random_and_stored_as_digests() {
        let (a, da, pa) = new_key();
        let (b, _, _) = new_key();
        assert_ne!(a, b);
        assert!(a.starts_with("lr_") && a.len() == 51);
        assert_eq!(da, key_digest(&a));
        assert_eq!(da.len(), 64);
        assert!(a.starts_with(&pa));
        assert!(!da.contains(&a[3..]));
    }

    #[test]
    fn rates_parse_and_buckets_refill() {
        assert_eq!(Rate::parse("off").unwrap(), None);
        assert_eq!(Rate::parse("0").unwrap(), None);
        let r = Rate::parse("2/s").unwrap().unwrap();
        assert_eq!(r.per, Duration::from_secs(1));
        assert!(Rate::parse("fast").is_err());
        assert!(Rate::parse("3/week").is_err());
        let t0 = Instant::now();
        let mut b = Bucket::full(r, t0);
        assert!(b.take(r, t0).is_ok());
        assert!(b.take(r, t0).is_ok());
        let wait = b.take(r, t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        assert!(b.take(r, t0 + Duration::from_millis(500)).is_ok());
        assert_eq!(Scope::parse("Admin").unwrap(), Scope::Admin);
        assert!(Scope::parse("root").is_err());
    }
}
