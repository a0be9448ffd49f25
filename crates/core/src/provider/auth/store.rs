//! The credential file, shared with the vendors' own CLIs (`~/.qwen/oauth_creds.json`,
//! `~/.iflow/oauth_creds.json`), and the lock that lets several processes refresh it without
//! racing.
//!
//! Formats read (`providers-wire.md` §1.7, §3.4; `rcc-pipeline-api.md` §4.1.4, §4.2.3):
//! * qwen-code: `{access_token, refresh_token, token_type, resource_url, expiry_date (epoch ms)}`
//!   (`id_token` allowed);
//! * iFlow CLI: `{access_token, refresh_token, expiry_date, token_type, scope, apiKey, userId,
//!   userName, ...}`;
//! * legacy, as the original rcc-pipeline wrote it: CLIProxyAPI style `{access_token,
//!   refresh_token, expired (RFC 3339), last_refresh, resource_url, email, type}` and the early
//!   `{accessToken, refreshToken, tokenExpiry (ms), lastRefresh, provider}`.
//!
//! Written: the qwen-code or the iFlow layout ([`StoreFormat`]; same field names, the vendor's
//! key order), pretty-printed with two spaces like `JSON.stringify(v, null, 2)`. Fields this
//! module does not know are written back unchanged, so iFlow's `apiKey`, `userId`, ... survive a
//! refresh (the original package dropped `apiKey`). Legacy bookkeeping fields (`expired`,
//! `last_refresh`, `type`, `lastRefresh`, `provider`) are converted away.
//!
//! Writes are atomic (a temp file in the same directory, fsync, rename), mode 0600 in a
//! directory created 0700. A file that cannot be read as credentials is an error that names the
//! path and is never overwritten: the user may want what is in it. [`TokenStore::clear`]
//! deletes it explicitly.
//!
//! File I/O is synchronous: the files are a few hundred bytes on a local disk, and staying off
//! `spawn_blocking` keeps tests on tokio's paused clock exact.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use fs4::fs_std::FileExt;
use serde_json::{Map, Value};

use super::TokenSet;
use crate::error::{Error, Result, TimeoutPhase};

pub const QWEN_CREDENTIALS_PATH: &str = "~/.qwen/oauth_creds.json";
pub const IFLOW_CREDENTIALS_PATH: &str = "~/.iflow/oauth_creds.json";
/// How long [`TokenStore::lock`] waits for another process. Longer than one refresh request
/// (`ReqwestTransport::DEFAULT_TIMEOUT`, 20 s), which is what the holder does with it.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// The `field` of store errors: the config key that points at the file.
const FIELD: &str = "credentialsPath";

/// Which vendor's layout to write. Both use the same field names; the key order follows the
/// vendor's CLI so the file looks like the one it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreFormat {
    #[default]
    QwenCode,
    IFlow,
}

/// One credential file.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenStore {
    path: PathBuf,
    format: StoreFormat,
    lock_timeout: Duration,
}

/// A leading `~` component becomes the home directory (`HOME`, `USERPROFILE` on Windows, like
/// Node's `os.homedir()`; the temp dir when there is none, like qwen-code). `~user` is left alone.
pub fn expand_home(path: impl AsRef<Path>) -> PathBuf {
    let p = path.as_ref();
    let mut components = p.components();
    match components.next() {
        Some(Component::Normal(first)) if first == "~" => home_dir().join(components.as_path()),
        _ => p.to_path_buf(),
    }
}

fn home_dir() -> PathBuf {
    let var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

impl TokenStore {
    /// A store at `path` (a leading `~` is expanded), writing the qwen-code layout.
    pub fn new(path: impl AsRef<Path>) -> Self {
        TokenStore { path: expand_home(path), format: StoreFormat::QwenCode, lock_timeout: DEFAULT_LOCK_TIMEOUT }
    }

    /// `~/.qwen/oauth_creds.json`, the file qwen-code uses.
    pub fn qwen_default() -> Self {
        Self::new(QWEN_CREDENTIALS_PATH)
    }

    /// `~/.iflow/oauth_creds.json`, the file the iFlow CLI uses, in its layout.
    pub fn iflow_default() -> Self {
        Self::new(IFLOW_CREDENTIALS_PATH).with_format(StoreFormat::IFlow)
    }

    pub fn with_format(mut self, format: StoreFormat) -> Self {
        self.format = format;
        self
    }

    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> StoreFormat {
        self.format
    }

    /// `<file>.lock` next to the file. It is never deleted: removing a lock file that another
    /// process has open and is about to lock would let two processes hold "the" lock.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// The stored credentials; `None` when there is no file. Any other failure (unreadable, not
    /// JSON, no token in it) is an `Error::Validation` naming the path, never the content.
    pub fn load(&self) -> Result<Option<TokenSet>> {
        match fs::read(&self.path) {
            Ok(bytes) => parse(&bytes).map(Some).map_err(|why| {
                Error::validation(
                    FIELD,
                    format!("the credentials file {} {why}; fix it, or delete it and sign in again", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error("read", &self.path, e)),
        }
    }

    /// Writes the credentials atomically. Fails, leaving the file as it is, when the current
    /// file is not readable credentials: [`Self::clear`] first if it may go. Callers that race
    /// with other processes hold [`Self::lock`] around their read-modify-write.
    pub fn save(&self, tokens: &TokenSet) -> Result<()> {
        if tokens.access_token.is_empty() {
            return Err(Error::validation(FIELD, "refusing to store credentials without an access token"));
        }
        match fs::read(&self.path) {
            Ok(bytes) => {
                if let Err(why) = parse(&bytes) {
                    return Err(Error::validation(
                        FIELD,
                        format!(
                            "refusing to overwrite the credentials file {}: it {why}; delete it (clear) first if it may be replaced",
                            self.path.display()
                        ),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_error("read", &self.path, e)),
        }
        let bytes = render(tokens, self.format);
        write_atomic(&self.path, |f| f.write_all(&bytes)).map_err(|e| self.io_error("write", &self.path, e))
    }

    /// Deletes the file (a missing file is fine). The lock file stays.
    pub fn clear(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_error("delete", &self.path, e)),
        }
    }

    /// Takes the cross-process lock if it is free.
    pub fn try_lock(&self) -> Result<Option<StoreLock>> {
        let file = self.open_lock_file()?;
        self.try_lock_file(file)
    }

    /// Takes the cross-process lock, waiting up to the lock timeout (then `Error::Timeout`,
    /// phase `queue`). It is an advisory lock (`flock` / `LockFileEx`) on `<file>.lock`, held
    /// until the guard is dropped; the OS releases it if the process dies, so a crash cannot
    /// leave a stale lock. The wait polls with a short backoff (10 ms doubling to 200 ms):
    /// advisory locks offer no async wakeup, and a blocking lock could not be given up.
    pub async fn lock(&self) -> Result<StoreLock> {
        let deadline = tokio::time::Instant::now() + self.lock_timeout;
        let mut wait = Duration::from_millis(10);
        loop {
            if let Some(lock) = self.try_lock()? {
                return Ok(lock);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let timeout_ms = self.lock_timeout.as_millis() as u64;
                return Err(Error::Timeout {
                    message: format!(
                        "timed out after {timeout_ms}ms waiting for the lock {} (another process holds it)",
                        self.lock_path().display()
                    ),
                    phase: TimeoutPhase::Queue,
                    timeout_ms,
                });
            }
            tokio::time::sleep(wait.min(deadline - now)).await;
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }

    fn open_lock_file(&self) -> Result<File> {
        let path = self.lock_path();
        create_private_dir(parent_dir(&path)).map_err(|e| self.io_error("create the directory of", &path, e))?;
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        open_private(&path, &mut opts).map_err(|e| self.io_error("open", &path, e))
    }

    fn try_lock_file(&self, file: File) -> Result<Option<StoreLock>> {
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => Ok(Some(StoreLock { file, path: self.lock_path() })),
            Ok(false) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(self.io_error("lock", &self.lock_path(), e)),
        }
    }

    fn io_error(&self, op: &str, path: &Path, e: io::Error) -> Error {
        Error::validation(FIELD, format!("could not {op} the credentials file {}: {e}", path.display()))
    }
}

/// Holds the store's cross-process lock until dropped.
pub struct StoreLock {
    file: File,
    path: PathBuf,
}

impl StoreLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it immediate even if
        // another handle to the same open file description is still alive.
        let _ = FileExt::unlock(&self.file);
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLock").field("path", &self.path).finish()
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates missing directories with mode 0700 (credentials live there); existing ones are left
/// as they are (the user's home is not ours to chmod).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Opens with mode 0600 on creation, and forces 0600 (a restrictive umask could drop the
/// owner's write bit).
fn open_private(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let f = opts.open(path)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    {
        opts.open(path)
    }
}

/// `<file>.<12 hex>.tmp` in the same directory (so the rename stays on one filesystem),
/// written by `write`, fsynced and renamed over `path`; the temp file is removed on any
/// failure. Readers see the old content or the new, never a part.
fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = parent_dir(path);
    create_private_dir(dir)?;
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let tmp = dir.join(format!("{}.{}.tmp", name.to_string_lossy(), hex::encode(fastrand::u64(..).to_le_bytes())[..12].to_owned()));
    let result = (|| {
        let mut f = open_private(&tmp, OpenOptions::new().write(true).create_new(true))?;
        write(&mut f)?;
        f.sync_all()?;
        drop(f);
        rename_over(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir);
    Ok(())
}

/// Windows refuses a rename while another program (an antivirus, an editor) has the target
/// open; qwen-code retries three times from 50 ms. Elsewhere a failed rename is final.
fn rename_over(from: &Path, to: &Path) -> io::Result<()> {
    let mut delay = Duration::from_millis(50);
    for _ in 0..3 {
        match fs::rename(from, to) {
            Err(e) if cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
    fs::rename(from, to)
}

/// Makes the rename itself durable (best effort; not possible on every platform).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Why some bytes are not credentials. The reasons never quote the content: it is secret.
fn parse(bytes: &[u8]) -> std::result::Result<TokenSet, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty".into());
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "ends early",
            _ => "has a syntax error",
        };
        format!("is not valid JSON ({what} at line {} column {})", e.line(), e.column())
    })?;
    let Value::Object(obj) = value else {
        return Err("does not hold a JSON object".into());
    };
    if obj.contains_key("access_token") {
        parse_snake(obj)
    } else if obj.contains_key("accessToken") {
        parse_legacy_camel(obj)
    } else {
        Err("has no access_token (it is neither the qwen-code/iFlow format nor a legacy token format)".into())
    }
}

/// Removes and returns a non-empty string field; a field of another type stays (it is then an
/// unknown field, written back as it was).
fn take_str(obj: &mut Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(_)) => match obj.shift_remove(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        },
        Some(Value::Null) => {
            obj.shift_remove(key);
            None
        }
        _ => None,
    }
}

/// Removes and returns an epoch-milliseconds field; a present value that is not a number
/// makes the file invalid (the expiry decides whether a token is used).
fn take_ms(obj: &mut Map<String, Value>, key: &str) -> std::result::Result<Option<u64>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => {
            obj.shift_remove(key);
            Ok(None)
        }
        Some(Value::Number(n)) => {
            let ms = n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64));
            let ms = ms.ok_or_else(|| format!("has a {key} that is not a positive number of milliseconds"))?;
            obj.shift_remove(key);
            Ok(Some(ms))
        }
        Some(_) => Err(format!("has a {key} that is not a number of milliseconds")),
    }
}

/// qwen-code, iFlow CLI and CLIProxyAPI-style (`expired` RFC 3339) files.
fn parse_snake(mut obj: Map<String, Value>) -> std::result::Result<TokenSet, String> {
    let access_token = take_str(&mut obj, "access_token").ok_or("has an access_token that is not a non-empty string")?;
    let refresh_token = take_str(&mut obj, "refresh_token");
    let token_type = take_str(&mut obj, "token_type").unwrap_or_else(|| "Bearer".into());
    let mut expires_at_ms = take_ms(&mut obj, "expiry_date")?;
    let mut api_key = take_str(&mut obj, "apiKey");
    if expires_at_ms.is_none() {
        if let Some(Value::String(expired)) = obj.get("expired") {
            // CLIProxyAPI's layout, written by rcc-pipeline 1.x: convert, drop its bookkeeping.
            expires_at_ms = Some(parse_rfc3339_ms(expired).ok_or("has an `expired` date that is not RFC 3339")?);
            obj.shift_remove("expired");
            obj.shift_remove("last_refresh");
            if obj.get("type").is_some_and(Value::is_string) {
                obj.shift_remove("type");
            }
            if api_key.is_none() {
                api_key = take_str(&mut obj, "api_key");
            }
        }
    }
    Ok(TokenSet {
        access_token,
        refresh_token,
        token_type,
        expires_at_ms,
        scope: take_str(&mut obj, "scope"),
        resource_url: take_str(&mut obj, "resource_url"),
        id_token: take_str(&mut obj, "id_token"),
        api_key,
        extra: obj,
    })
}

/// The first rcc-pipeline layout: `{accessToken, refreshToken, tokenExpiry, lastRefresh,
/// provider}` (plus `resource_url`, `email` when the server sent them).
fn parse_legacy_camel(mut obj: Map<String, Value>) -> std::result::Result<TokenSet, String> {
    let access_token = take_str(&mut obj, "accessToken").ok_or("has an accessToken that is not a non-empty string")?;
    let refresh_token = take_str(&mut obj, "refreshToken");
    let expires_at_ms = take_ms(&mut obj, "tokenExpiry")?;
    obj.shift_remove("lastRefresh");
    if obj.get("provider").is_some_and(Value::is_string) {
        obj.shift_remove("provider");
    }
    Ok(TokenSet {
        access_token,
        refresh_token,
        token_type: take_str(&mut obj, "token_type").unwrap_or_else(|| "Bearer".into()),
        expires_at_ms,
        scope: take_str(&mut obj, "scope"),
        resource_url: take_str(&mut obj, "resource_url"),
        id_token: take_str(&mut obj, "id_token"),
        api_key: take_str(&mut obj, "apiKey"),
        extra: obj,
    })
}

fn render(t: &TokenSet, format: StoreFormat) -> Vec<u8> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    let s = |v: &Option<String>| v.clone().map(Value::from);
    let access = Some(Value::from(t.access_token.clone()));
    let token_type = Some(Value::from(if t.token_type.is_empty() { "Bearer".to_string() } else { t.token_type.clone() }));
    let expiry = t.expires_at_ms.map(Value::from);
    match format {
        StoreFormat::QwenCode => {
            put("access_token", access);
            put("refresh_token", s(&t.refresh_token));
            put("token_type", token_type);
            put("resource_url", s(&t.resource_url));
            put("expiry_date", expiry);
            put("id_token", s(&t.id_token));
            put("scope", s(&t.scope));
            put("apiKey", s(&t.api_key));
        }
        StoreFormat::IFlow => {
            put("access_token", access);
            put("refresh_token", s(&t.refresh_token));
            put("expiry_date", expiry);
            put("token_type", token_type);
            put("scope", s(&t.scope));
            put("apiKey", s(&t.api_key));
            put("resource_url", s(&t.resource_url));
            put("id_token", s(&t.id_token));
        }
    }
    for (k, v) in &t.extra {
        if !m.contains_key(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    // A Map of Values always serializes.
    serde_json::to_vec_pretty(&Value::Object(m)).unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → epoch ms. What `Date.toISOString()` and Go's
/// `time.RFC3339(Nano)` produce; no other date forms.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = b.get(from..to)?;
        digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &b[start..i.min(start + 3)];
        millis = digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')) * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') => {
            let (h, m) = match b.len() - i {
                6 if b[i + 3] == b':' => (num(i + 1, i + 3)?, num(i + 4, i + 6)?),
                5 => (num(i + 1, i + 3)?, num(i + 3, i + 5)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_s;
    u64::try_from(secs * 1000 + millis).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn store_in(dir: &tempfile::TempDir) -> TokenStore {
        TokenStore::new(dir.path().join("sub").join("oauth_creds.json"))
    }

    fn write_raw(store: &TokenStore, text: &str) {
        fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        fs::write(store.path(), text).unwrap();
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn reads_the_qwen_code_format() {
        let t = parse(
            br#"{"access_token":"at","refresh_token":"rt","token_type":"Bearer","resource_url":"portal.qwen.ai","expiry_date":1764876220290}"#,
        )
        .unwrap();
        assert_eq!(t.access_token, "at");
        assert_eq!(t.refresh_token.as_deref(), Some("rt"));
        assert_eq!(t.expires_at_ms, Some(1_764_876_220_290));
        assert_eq!(t.resource_url.as_deref(), Some("portal.qwen.ai"));
        assert!(t.extra.is_empty());
        // A float expiry (JSON has no integers) still reads.
        assert_eq!(parse(br#"{"access_token":"a","expiry_date":1.5e12}"#).unwrap().expires_at_ms, Some(1_500_000_000_000));
    }

    #[test]
    fn the_iflow_format_round_trips_with_its_extras() {
        let original = json!({"access_token":"at","refresh_token":"rt","expiry_date":1764876220290u64,"token_type":"Bearer",
            "scope":"openid profile api","apiKey":"sk-0123","userId":"u-1","userName":"Ann","nested":{"k":[1,2]}});
        let t = parse(original.to_string().as_bytes()).unwrap();
        assert_eq!(t.api_key.as_deref(), Some("sk-0123"));
        assert_eq!(t.extra.keys().collect::<Vec<_>>(), ["userId", "userName", "nested"]);
        let written = render(&t, StoreFormat::IFlow);
        let text = String::from_utf8(written.clone()).unwrap();
        assert!(text.starts_with("{\n  \"access_token\": \"at\",\n  \"refresh_token\""), "{text}");
        let back: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(back, original);
        assert_eq!(
            back.as_object().unwrap().keys().collect::<Vec<_>>(),
            original.as_object().unwrap().keys().collect::<Vec<_>>(),
            "the iFlow CLI's key order"
        );
    }

    #[test]
    fn writes_the_qwen_code_layout() {
        let mut t = TokenSet::bearer("at", Some("rt".into()), Some(5));
        t.resource_url = Some("portal.qwen.ai".into());
        let v: Value = serde_json::from_slice(&render(&t, StoreFormat::QwenCode)).unwrap();
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["access_token", "refresh_token", "token_type", "resource_url", "expiry_date"]
        );
    }

    #[test]
    fn reads_the_legacy_formats() {
        // rcc-pipeline ≥ 4a68f32e (CLIProxyAPI style).
        let t = parse(br#"{"access_token":"at","refresh_token":"rt","expired":"2025-12-04T19:23:40.290Z","last_refresh":"2025-12-04T13:23:40.290Z","resource_url":"portal.qwen.ai","email":"user@example.com","type":"qwen"}"#).unwrap();
        assert_eq!(t.expires_at_ms, Some(1_764_876_220_290));
        assert_eq!(t.resource_url.as_deref(), Some("portal.qwen.ai"));
        assert_eq!(t.extra.keys().collect::<Vec<_>>(), ["email"]);
        // The early camelCase layout.
        let t = parse(br#"{"accessToken":"at","refreshToken":"rt","tokenExpiry":1764876220290,"lastRefresh":1764854620290,"provider":"qwen","resource_url":"portal.qwen.ai"}"#).unwrap();
        assert_eq!((t.access_token.as_str(), t.refresh_token.as_deref(), t.expires_at_ms), ("at", Some("rt"), Some(1_764_876_220_290)));
        assert_eq!(t.resource_url.as_deref(), Some("portal.qwen.ai"));
        assert!(t.extra.is_empty());
        // Rewritten in the qwen-code layout, without the legacy bookkeeping.
        let v: Value = serde_json::from_slice(&render(&t, StoreFormat::QwenCode)).unwrap();
        assert_eq!(
            v,
            json!({"access_token":"at","refresh_token":"rt","token_type":"Bearer","resource_url":"portal.qwen.ai","expiry_date":1764876220290u64})
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2025-12-04T19:23:40.290Z"), Some(1_764_876_220_290));
        assert_eq!(parse_rfc3339_ms("2025-12-05T03:23:40.29+08:00"), Some(1_764_876_220_290));
        assert_eq!(parse_rfc3339_ms("2025-12-04T14:23:40.290123456-05:00"), Some(1_764_876_220_290));
        assert_eq!(parse_rfc3339_ms("2024-02-29T00:00:00z"), Some(1_709_164_800_000));
        for bad in
            ["", "2025-12-04", "2025-12-04T19:23:40", "2025-02-30T00:00:00Z", "2025-12-04T19:23:40.Z", "2025-12-04T19:23:40Zx", "yesterday"]
        {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn unusable_content_is_rejected_without_quoting_it() {
        for (text, why) in [
            ("", "is empty"),
            ("  \n", "is empty"),
            ("{\"access_token\": \"sekret\",", "not valid JSON"),
            ("[\"sekret\"]", "does not hold a JSON object"),
            ("{\"token\":\"sekret\"}", "has no access_token"),
            ("{\"access_token\":\"\"}", "not a non-empty string"),
            ("{\"access_token\":\"sekret\",\"expiry_date\":\"sekret\"}", "expiry_date"),
        ] {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(!e.contains("sekret"), "{e}");
        }
    }

    #[test]
    fn load_save_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        assert_eq!(store.load().unwrap(), None);
        let mut t = TokenSet::bearer("at", Some("rt".into()), Some(1_764_876_220_290));
        t.extra.insert("email".into(), "a@b".into());
        store.save(&t).unwrap();
        assert_eq!(store.load().unwrap(), Some(t.clone()));
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.starts_with("{\n  \"access_token\": \"at\",") && !text.ends_with('\n'), "{text}");
        assert_eq!(dir_entries(store.path().parent().unwrap()), ["oauth_creds.json"], "no temp files left");
        store.clear().unwrap();
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
        assert!(store.save(&TokenSet::default()).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        store.save(&TokenSet::bearer("at", None, None)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(store.path().parent().unwrap()), 0o700);
        // Rewriting a file that had looser permissions tightens them.
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        store.save(&TokenSet::bearer("at2", None, None)).unwrap();
        assert_eq!(mode(store.path()), 0o600);
        let _lock = store.try_lock().unwrap().unwrap();
        assert_eq!(mode(&store.lock_path()), 0o600);
    }

    #[test]
    fn a_write_that_fails_midway_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        store.save(&TokenSet::bearer("old", None, None)).unwrap();
        let before = fs::read(store.path()).unwrap();
        let e = write_atomic(store.path(), |f| {
            f.write_all(b"{\"access_token\": \"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert_eq!(fs::read(store.path()).unwrap(), before);
        assert_eq!(dir_entries(store.path().parent().unwrap()), ["oauth_creds.json"]);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        write_raw(&store, "{\"access_token\": \"sekret\"");
        let e = store.load().unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains(&store.path().display().to_string()) && !shown.contains("sekret"), "{shown}");
        assert_eq!(e.to_payload()["field"], "credentialsPath");
        let e = store.save(&TokenSet::bearer("new", None, None)).unwrap_err();
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
        assert_eq!(fs::read_to_string(store.path()).unwrap(), "{\"access_token\": \"sekret\"");
        store.clear().unwrap();
        store.save(&TokenSet::bearer("new", None, None)).unwrap();
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        assert_eq!(store.lock_path(), dir.path().join("sub").join("oauth_creds.json.lock"));
        let held = store.try_lock().unwrap().expect("free");
        assert!(store.try_lock().unwrap().is_none(), "a second open of the lock file is refused");
        drop(held);
        assert!(store.try_lock().unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_lock_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).with_lock_timeout(Duration::from_secs(2));
        let held = store.lock().await.unwrap();
        let t0 = tokio::time::Instant::now();
        let e = store.lock().await.unwrap_err();
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert!(matches!(e, Error::Timeout { phase: TimeoutPhase::Queue, timeout_ms: 2000, .. }), "{e:?}");
        // Released while someone waits: the waiter gets it.
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.lock().await.map(|_| tokio::time::Instant::now()) }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(held);
        let got = waiter.await.unwrap().unwrap();
        assert!(got - t0 < Duration::from_millis(2800), "{:?}", got - t0);
    }

    #[test]
    fn tilde_means_home() {
        let home = home_dir();
        assert_eq!(expand_home("~/.qwen/oauth_creds.json"), home.join(".qwen").join("oauth_creds.json"));
        assert_eq!(expand_home("/abs/~/x"), PathBuf::from("/abs/~/x"));
        assert_eq!(expand_home("~other/x"), PathBuf::from("~other/x"));
        assert_eq!(TokenStore::qwen_default().path(), home.join(".qwen/oauth_creds.json"));
        assert_eq!(TokenStore::iflow_default().format(), StoreFormat::IFlow);
    }
}
