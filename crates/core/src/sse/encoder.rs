/// Writes one event in wire form. Multi-line data becomes several `data:` lines. With
/// `space_after_colon` false it writes `data:{…}`, as iFlow does.
pub fn encode_event(event: Option<&str>, data: &str, space_after_colon: bool) -> String {
    let sep = if space_after_colon { ": " } else { ":" };
    let mut s = String::with_capacity(data.len() + 16);
    if let Some(e) = event {
        s.push_str("event");
        s.push_str(sep);
        s.push_str(e);
        s.push('\n');
    }
    for line in data.split('\n') {
        s.push_str("data");
        s.push_str(sep);
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    s
}
