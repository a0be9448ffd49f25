//! Happenings the scheduler reports. The sink says which kinds anyone listens to, so that an
//! unobserved event costs one bit test and no allocation.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    RequestQueued = 0,
    RequestStarted,
    RequestCompleted,
    RequestFailed,
    Retry,
    CircuitOpen,
    CircuitHalfOpen,
    CircuitClose,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::RequestQueued,
        EventKind::RequestStarted,
        EventKind::RequestCompleted,
        EventKind::RequestFailed,
        EventKind::Retry,
        EventKind::CircuitOpen,
        EventKind::CircuitHalfOpen,
        EventKind::CircuitClose,
    ];

    /// The JS event name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::RequestQueued => "requestQueued",
            EventKind::RequestStarted => "requestStarted",
            EventKind::RequestCompleted => "requestCompleted",
            EventKind::RequestFailed => "requestFailed",
            EventKind::Retry => "retry",
            EventKind::CircuitOpen => "circuitOpen",
            EventKind::CircuitHalfOpen => "circuitHalfOpen",
            EventKind::CircuitClose => "circuitClose",
        }
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

pub trait EventSink: Send + Sync {
    fn wants(&self, kind: EventKind) -> bool;
    fn emit(&self, kind: EventKind, payload: Value);
}

/// Drops everything.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn wants(&self, _: EventKind) -> bool {
        false
    }
    fn emit(&self, _: EventKind, _: Value) {}
}
