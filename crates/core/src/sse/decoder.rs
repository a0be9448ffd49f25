/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type, "message".
    pub event: Option<String>,
    /// All `data:` lines of the event joined with `\n`.
    pub data: String,
    /// The last event id seen so far in the stream (ids persist across events).
    pub id: Option<String>,
    /// A `retry:` value given inside this event, in milliseconds.
    pub retry: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("invalid UTF-8 in SSE line {line}")]
    InvalidUtf8 { line: u64 },
    #[error("SSE line {line} is longer than {limit} bytes")]
    LineTooLong { line: u64, limit: usize },
    #[error("SSE event ending at line {line} carries more than {limit} bytes of data")]
    EventTooLarge { line: u64, limit: usize },
}

/// Incremental decoder. Feed it byte slices of any size, split anywhere (inside a line, inside
/// a CRLF pair, inside a multi-byte UTF-8 character); it returns the events completed so far.
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// The previous slice ended with `\r`: a `\n` at the start of the next one belongs to it.
    after_cr: bool,
    at_stream_start: bool,
    lines_seen: u64,
    data: String,
    has_data_field: bool,
    event: Option<String>,
    last_id: Option<String>,
    retry: Option<u64>,
    /// A `retry:` seen inside the event being built.
    pending_retry: Option<u64>,
    max_line: usize,
    max_event: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseDecoder {
    /// A decoder with generous limits (16 MiB per line and per event) that still stop a
    /// runaway upstream from exhausting memory.
    pub fn new() -> Self {
        Self::with_limits(16 << 20, 16 << 20)
    }

    pub fn with_limits(max_line: usize, max_event: usize) -> Self {
        SseDecoder {
            line: Vec::new(),
            after_cr: false,
            at_stream_start: true,
            lines_seen: 0,
            data: String::new(),
            has_data_field: false,
            event: None,
            last_id: None,
            retry: None,
            pending_retry: None,
            max_line,
            max_event,
        }
    }

    /// Decodes `bytes`, appending completed events to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.after_cr && !bytes.is_empty() {
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
            self.after_cr = false;
        }
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.push_partial(bytes)?;
                    break;
                }
                Some(i) => {
                    let (line, rest) = bytes.split_at(i);
                    let was_cr = rest[0] == b'\r';
                    bytes = &rest[1..];
                    if was_cr {
                        match bytes.first() {
                            Some(b'\n') => bytes = &bytes[1..],
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    if self.line.is_empty() {
                        // A whole line inside this slice: processed where it is, not copied.
                        if line.len() > self.max_line {
                            return Err(SseError::LineTooLong { line: self.lines_seen + 1, limit: self.max_line });
                        }
                        self.process_line(line, out)?;
                    } else {
                        self.push_partial(line)?;
                        let line = std::mem::take(&mut self.line);
                        self.process_line(&line, out)?;
                        self.line = line;
                        self.line.clear();
                    }
                }
            }
        }
        Ok(())
    }

    /// End of input. A last line without terminator is processed, and an event that was not
    /// closed by a blank line is dispatched (servers often end without one).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    /// The reconnection time most recently set by a `retry:` field.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    fn push_partial(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.max_line {
            return Err(SseError::LineTooLong { line: self.lines_seen + 1, limit: self.max_line });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, raw: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.lines_seen += 1;
        let mut raw = raw;
        if self.at_stream_start {
            // Only a complete first line is checked, so a BOM split across reads is still seen.
            self.at_stream_start = false;
            raw = raw.strip_prefix(UTF8_BOM).unwrap_or(raw);
        }
        if raw.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        // CR and LF never occur inside a multi-byte UTF-8 sequence, so a complete line is a
        // complete piece of text.
        let line = std::str::from_utf8(raw).map_err(|_| SseError::InvalidUtf8 { line: self.lines_seen })?;
        if line.starts_with(':') {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_event {
                    return Err(SseError::EventTooLarge { line: self.lines_seen, limit: self.max_event });
                }
                // One allocation of the right size for the usual one-line event (the data
                // string is handed over with the event, so each event starts from nothing).
                self.data.reserve(value.len() + 1);
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data_field = true;
            }
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
                self.pending_retry = self.retry;
            }
            _ => {} // unknown fields are ignored, as the spec says
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        let retry = self.pending_retry.take();
        if !self.has_data_field {
            self.data.clear();
            return;
        }
        self.has_data_field = false;
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(SseEvent { event: event.filter(|e| !e.is_empty()), data, id: self.last_id.clone(), retry });
    }
}
