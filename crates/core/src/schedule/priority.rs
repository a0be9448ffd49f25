//! Request priority: a number (higher runs first) or a named level.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::validate::invalid;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priority(pub f64);

impl Default for Priority {
    fn default() -> Self {
        Priority::MEDIUM
    }
}

impl Priority {
    pub const LOW: Priority = Priority(25.0);
    pub const MEDIUM: Priority = Priority(50.0);
    pub const HIGH: Priority = Priority(75.0);
    pub const CRITICAL: Priority = Priority(100.0);

    pub fn from_name(name: &str) -> Option<Priority> {
        match name {
            "low" => Some(Priority::LOW),
            "medium" | "normal" => Some(Priority::MEDIUM),
            "high" => Some(Priority::HIGH),
            "critical" => Some(Priority::CRITICAL),
            _ => None,
        }
    }

    /// `priority` as JS passes it: a finite number, a level name, or nothing (medium).
    pub fn from_value(v: Option<&Value>, field: &str) -> Result<Priority> {
        match v {
            None | Some(Value::Null) => Ok(Priority::default()),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Ok(Priority(f)),
                _ => Err(invalid(field, "a finite number or 'low' | 'medium' | 'high' | 'critical'", v)),
            },
            Some(Value::String(s)) => Priority::from_name(s).ok_or_else(|| {
                Error::validation(field, format!("{field} must be a finite number or 'low' | 'medium' | 'high' | 'critical', got {s:?}"))
            }),
            _ => Err(invalid(field, "a finite number or 'low' | 'medium' | 'high' | 'critical'", v)),
        }
    }

    /// A key whose integer order is the numeric order of the priority (total order on f64).
    pub(crate) fn order_key(self) -> u64 {
        let bits = self.0.to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(Priority::from_value(None, "p").unwrap(), Priority::MEDIUM);
        assert_eq!(Priority::from_value(Some(&"critical".into()), "p").unwrap(), Priority(100.0));
        assert_eq!(Priority::from_value(Some(&serde_json::json!(7)), "p").unwrap(), Priority(7.0));
        assert_eq!(
            Priority::from_value(Some(&"urgent".into()), "priority").unwrap_err().to_string(),
            "priority must be a finite number or 'low' | 'medium' | 'high' | 'critical', got \"urgent\""
        );
    }

    #[test]
    fn order_key_follows_numeric_order() {
        let xs = [-1e9, -3.5, -0.0, 0.0, 0.5, 1.0, 25.0, 100.0, 1e12];
        for w in xs.windows(2) {
            assert!(Priority(w[0]).order_key() <= Priority(w[1]).order_key(), "{w:?}");
        }
    }
}
