//! The dashboard at `/ui`: the page and its assets are served with their content types and
//! validators, and the page loads nothing from anywhere but the service itself.

use crate::helpers::*;

/// The values of `attr="…"` in `html`.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!(" {attr}=\"");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let end = rest.find('"').expect("closed attribute");
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// The specifiers of a module's static imports (`… from "./x.js"`).
fn imports_of(js: &str) -> Vec<String> {
    js.lines()
        .filter(|l| l.starts_with("import "))
        .map(|l| {
            let from = l.rfind(" from \"").expect("import … from \"…\"");
            let spec = &l[from + 7..];
            spec[..spec.find('"').unwrap()].to_string()
        })
        .collect()
}

#[tokio::test]
async fn the_dashboard_and_its_assets_are_served_from_the_binary() {
    let app = TestApp::spawn("sqlite", 1).await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // `/ui` sends the browser to `/ui/`, against which the page's relative references resolve.
    let r = no_redirect.get(app.url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/ui/");

    let r = app.http.get(app.url("/ui/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let page_url = r.url().clone();
    let html = r.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">"));

    // The same bytes again answer 304; another validator gets the page.
    let r = app
        .http
        .get(app.url("/ui/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    let r = app
        .http
        .get(app.url("/ui/"))
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Every reference of the page stays on this origin, and each one answers.
    let mut refs = attr_values(&html, "src");
    refs.extend(attr_values(&html, "href"));
    assert!(refs.len() >= 6, "{refs:?}");
    let mut scripts = Vec::new();
    for reference in &refs {
        assert!(
            !reference.contains("//") && !reference.contains(':'),
            "`{reference}` is not a local reference"
        );
        if reference.starts_with('#') {
            continue;
        }
        let url = page_url.join(reference).unwrap();
        assert_eq!(url.origin(), page_url.origin());
        let r = app.http.get(url.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let want = match reference.rsplit('.').next().unwrap() {
            "css" => "text/css; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "svg" => "image/svg+xml",
            "json" => "application/json",
            "yaml" => "application/yaml",
            _ => "text/html",
        };
        assert!(ct.starts_with(want), "{url}: {ct}, wanted {want}");
        if reference.ends_with(".js") {
            scripts.push(url);
        }
    }
    // The docs and the OpenAPI document are linked from the page.
    for target in ["../docs", "../openapi.json"] {
        assert!(refs.iter().any(|r| r == target), "{target} in {refs:?}");
    }

    // Modules import only modules beside them; those are served as JavaScript too.
    let mut seen = std::collections::BTreeSet::new();
    while let Some(url) = scripts.pop() {
        if !seen.insert(url.to_string()) {
            continue;
        }
        let r = app.http.get(url.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(
            r.headers()["content-type"],
            "text/javascript; charset=utf-8",
            "{url}"
        );
        assert!(r.headers().contains_key("etag"));
        let js = r.text().await.unwrap();
        // The SVG namespace is a name, never fetched; any other address would be a server.
        let js = js.replace("\"http://www.w3.org/2000/svg\"", "\"\"");
        assert!(
            !js.contains("http://") && !js.contains("https://"),
            "{url} names another server"
        );
        for spec in imports_of(&js) {
            assert!(spec.starts_with("./"), "{url} imports `{spec}`");
            scripts.push(url.join(&spec).unwrap());
        }
    }
    assert!(seen.len() >= 3, "{seen:?}");

    // The style sheet pulls in nothing (no fonts, no imports).
    let css = app
        .http
        .get(app.url("/ui/app.css"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!css.contains("url(") && !css.contains("@import"));

    // Unknown files and other methods are problem documents.
    let r = app
        .http
        .get(app.url("/ui/nothing.js"))
        .send()
        .await
        .unwrap();
    let p = assert_problem(r, 404, "nothing.js").await;
    assert_eq!(p["type"], "urn:longrun:problem:not-found");
    let r = app.http.post(app.url("/ui/")).send().await.unwrap();
    assert_problem(r, 405, "GET").await;
    app.stop().await;
}

#[tokio::test]
async fn a_deep_link_to_a_job_is_the_page() {
    let app = TestApp::spawn("sqlite", 1).await;
    let page = app.http.get(app.url("/ui/")).send().await.unwrap();
    let page = page.bytes().await.unwrap();

    // `/ui/jobs/{id}` answers the page itself, and the assets it references resolve beside it.
    let r = app
        .http
        .get(app.url("/ui/jobs/0b7e2a4c-1111-4c3e-9a7d-2f1e5c6b7a80"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.bytes().await.unwrap(), page);
    for (name, ct) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ] {
        let r = app
            .http
            .get(app.url(&format!("/ui/jobs/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["content-type"], ct, "{name}");
    }

    // Deeper paths and other names are still not the dashboard's.
    for path in ["/ui/jobs/", "/ui/jobs/a/b", "/ui/nothing.js"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}
