//! The one parser of the Prometheus text exposition that `/metrics` serves, and the
//! lookups the tests make on it. Strict: a malformed line fails the test that reads it.

use std::collections::BTreeMap;

/// One sample line of the text exposition.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// A label's value, `""` when the sample has no such label.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    /// `name{a="x",b="y"}`: the identity of the series.
    pub fn series(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// Parses the sample lines of a text exposition (comments and blank lines skipped).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample line without a value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad sample value in {line:?}")),
        };
        let (name, labels) = parse_series(series, line);
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// `name` or `name{a="x",...}` -> the name and the labels.
fn parse_series(series: &str, line: &str) -> (String, BTreeMap<String, String>) {
    match series.split_once('{') {
        None => (series.to_owned(), BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unterminated labels in {line:?}"));
            (name.to_owned(), parse_labels(body, line))
        }
    }
}

fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let mut name = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        if name.is_empty() {
            break;
        }
        assert_eq!(
            chars.next(),
            Some('"'),
            "label value not quoted in {line:?}"
        );
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape in {line:?}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        }
        labels.insert(name, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

/// The samples of one metric.
pub fn of<'a>(samples: &'a [Sample], name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
    samples.iter().filter(move |s| s.name == name)
}

/// The value of the sample of `name` with exactly these labels.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    of(samples, name)
        .find(|s| s.labels.len() == labels.len() && labels.iter().all(|(k, v)| s.label(k) == *v))
        .map(|s| s.value)
}

/// The sum over the samples of `name` that carry these labels (and any others).
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    of(samples, name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The value of one series written as in the exposition, `name` or `name{a="x"}` (label
/// order free), in an exposition's text; `None` when the series is absent.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    let (name, labels) = parse_series(series, series);
    parse_exposition(text)
        .into_iter()
        .find(|s| s.name == name && s.labels == labels)
        .map(|s| s.value)
}

/// Every series of one metric in an exposition's text: its labels and value.
pub fn series_of(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    parse_exposition(text)
        .into_iter()
        .filter(|s| s.name == name)
        .map(|s| (s.labels, s.value))
        .collect()
}
