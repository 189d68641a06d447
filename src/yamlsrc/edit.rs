pub fn quote_scalar(s: &str) -> String {
    format!("{s:?}")
}
