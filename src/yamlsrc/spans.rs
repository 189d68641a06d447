pub struct SpanIndex;
#[derive(Debug)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}
impl SpanIndex {
    pub fn build(_s: &str) -> Result<SpanIndex, SyntaxError> {
        Ok(SpanIndex)
    }
    pub fn line_of(&self, _p: &str) -> usize {
        1
    }
}
