//! Reading the server's Prometheus text exposition (`/metrics`) in tests.

/// The `/metrics` page of the server at `base`.
pub async fn scrape(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample named exactly `name` (labels included, as in
/// `classrelay_peers{role="Publisher"}`), if the page has it.
pub fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
