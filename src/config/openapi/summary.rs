//! Operations left out for one reason are told once when there are many of them: an unbundled
//! document (every path item an external `$ref`) would otherwise print hundreds of copies of
//! one warning, and the one line that matters scrolls away.

use super::Skipped;

/// Up to this many operations with one reason are listed one per line.
const LISTED: usize = 3;

/// Examples named on a summary line.
const EXAMPLES: usize = 3;

/// One line per skipped operation (`GET /a: reason`), except that a reason shared by more
/// than [`LISTED`] operations gets one line with the first operation, the count and a few
/// more examples. Reasons are the same when they differ only inside backticks (the file of an
/// external `$ref`, the segment text), and keep their first appearance's order.
pub fn skipped_lines(skipped: &[Skipped]) -> Vec<String> {
    let mut groups: Vec<(String, Vec<&Skipped>)> = Vec::new();
    for s in skipped {
        let shape = shape(&s.reason);
        match groups.iter_mut().find(|(g, _)| *g == shape) {
            Some((_, members)) => members.push(s),
            None => groups.push((shape, vec![s])),
        }
    }
    let mut lines = Vec::new();
    for (_, members) in groups {
        if members.len() <= LISTED {
            lines.extend(
                members
                    .iter()
                    .map(|s| format!("{}: {}", label(s), s.reason)),
            );
            continue;
        }
        let first = members[0];
        let examples: Vec<String> = members[1..]
            .iter()
            .take(EXAMPLES)
            .map(|s| label(s))
            .collect();
        lines.push(format!(
            "{}: {} (and {} more operations for the same reason, e.g. {})",
            label(first),
            first.reason,
            members.len() - 1,
            examples.join(", ")
        ));
    }
    lines
}

/// `GET /a`, or the path alone for a path item that could not be read.
fn label(s: &Skipped) -> String {
    if s.method.is_empty() {
        s.path.clone()
    } else {
        format!("{} {}", s.method, s.path)
    }
}

/// A reason with the text inside backticks left out.
fn shape(reason: &str) -> String {
    reason
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { "`…`" } else { part })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skipped(method: &str, path: &str, reason: &str) -> Skipped {
        Skipped {
            method: method.into(),
            path: path.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn many_operations_with_one_reason_make_one_line() {
        let mut list: Vec<Skipped> = (0..659)
            .map(|i| {
                skipped(
                    "GET",
                    &format!("/v2/r{i}"),
                    &format!("`$ref: resources/r{i}.yml` points outside the document"),
                )
            })
            .collect();
        list.insert(1, skipped("", "/odd", "the path item is not a mapping"));
        list.push(skipped("GET", "/a;b", "segment text `a;b`: raw `;`"));
        assert_eq!(
            skipped_lines(&list),
            [
                "GET /v2/r0: `$ref: resources/r0.yml` points outside the document (and 658 \
                 more operations for the same reason, e.g. GET /v2/r1, GET /v2/r2, GET /v2/r3)",
                "/odd: the path item is not a mapping",
                "GET /a;b: segment text `a;b`: raw `;`",
            ]
        );
    }

    #[test]
    fn a_few_operations_are_listed() {
        let list: Vec<Skipped> = (0..3)
            .map(|i| skipped("PUT", &format!("/x{i}"), "`x` is odd"))
            .collect();
        assert_eq!(
            skipped_lines(&list),
            [
                "PUT /x0: `x` is odd",
                "PUT /x1: `x` is odd",
                "PUT /x2: `x` is odd"
            ]
        );
    }
}
