//! The web console (issue #21 item 3): its HTML, CSS and JS compiled into the binary, served
//! under `/` by the HTTP listener; the pages read and change nothing but through `/api/v1`.

#![allow(
    dead_code,
    reason = "served by crate::http, which lands in a parallel branch"
)]

/// The headers every console answer should carry: the pages load only their own assets and
/// talk only to their own origin (no inline script or style, no frame, no other host).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every asset: (path, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("/index.html", HTML, include_bytes!("assets/index.html")),
    ("/console.css", CSS, include_bytes!("assets/console.css")),
    ("/console.js", JS, include_bytes!("assets/console.js")),
    ("/pages.js", JS, include_bytes!("assets/pages.js")),
    ("/chart.js", JS, include_bytes!("assets/chart.js")),
    ("/thing.js", JS, include_bytes!("assets/thing.js")),
];

/// The asset at `path` (without the query; `/` is the index page): its content type and bytes.
/// Anything else is `None` (a 404): no path reaches the file system.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, kind, bytes)| (*kind, *bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_index_page_and_unknown_paths_are_none() {
        let (kind, body) = asset("/").unwrap();
        assert_eq!(kind, HTML);
        assert!(
            std::str::from_utf8(body)
                .unwrap()
                .contains("<main id=\"view\">")
        );
        assert_eq!(asset("/console.js").unwrap().0, JS);
        for bad in [
            "",
            "/../Cargo.toml",
            "/console.js/",
            "/etc/passwd",
            "//console.js",
            "/assets/console.js",
        ] {
            assert!(asset(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_script_and_style_the_index_names_is_served_and_nothing_is_external_or_inline() {
        let index = std::str::from_utf8(asset("/").unwrap().1).unwrap();
        for (path, _, _) in ASSETS.iter().filter(|(p, _, _)| *p != "/index.html") {
            assert!(
                index.contains(&format!("\"{path}\"")),
                "index.html does not load {path}"
            );
        }
        for (path, _, bytes) in ASSETS {
            // The SVG namespace is a name, not a request.
            let text = std::str::from_utf8(bytes)
                .unwrap()
                .replace("\"http://www.w3.org/2000/svg\"", "SVG_NS");
            for banned in [
                "http://",
                "https://",
                "//cdn",
                " onclick=",
                " onload=",
                "<style",
                "eval(",
            ] {
                assert!(!text.contains(banned), "{path} contains {banned:?}");
            }
            if path.ends_with(".html") {
                assert!(!text.contains("<script>"), "{path} has an inline script");
            }
        }
    }
}
