//! Which WebSocket frames a browser sends count as its user using the
//! session (docs/decisions.md, "What counts as using a session"). A
//! code-server tab that nobody touches still talks. Measured on the real
//! pack (medforge-server/tests/fair_sharing_browser.rs), an untouched workbench sends, after it has
//! loaded: VS Code's remote protocol (`PersistentProtocol`) `KeepAlive`
//! and `Ack` messages every few seconds (the protocol's 13-byte header
//! alone, types 9 and 3); a `ping` on the `telemetry` channel every 2 s
//! for the first 20 s or so (a latency measurement); `$onFileEvent` to
//! the extension host whenever a file changes (an echo of the server's
//! own watcher: a job writing files would otherwise keep an abandoned tab
//! alive); and `$onDidChangeWindowFocus` when the window loses or gains
//! the focus. Those, and WebSocket ping, pong and close frames, are the
//! tab's, not its user's. Everything else a browser sends (a keystroke in
//! the terminal or the editor is a `Regular` message with another RPC, as
//! is any other application's frame) is use.
//!
//! [`FrameScanner`] reads the client-to-server byte stream as it passes
//! (frames may be split anywhere across reads) without buffering
//! payloads: it only unmasks the first [`PREFIX`] bytes of each message.
//! The tunnel asks the upstream for no compression
//! (`Sec-WebSocket-Extensions` is not passed on), so those bytes are VS
//! Code's header and the start of its RPC.

/// VS Code's `ProtocolMessageType`s.
const VSCODE_REGULAR: u8 = 1;
const VSCODE_ACK: u8 = 3;
const VSCODE_KEEP_ALIVE: u8 = 9;
/// VS Code's protocol header: type, id, ack, length (13 bytes). Its Ack
/// and KeepAlive messages are the header alone.
const VSCODE_HEADER: usize = 13;
/// How much of each message is read: the header and the RPC's channel and
/// method names, which come first in its body.
const PREFIX: usize = 64;
/// The RPCs an untouched workbench sends by itself, as their names appear
/// in the first bytes of a `Regular` message's body (IPC strings are a
/// type byte 1 and a length byte before the text).
const AUTOMATIC_RPCS: [&[u8]; 3] = [b"\x09telemetry\x01\x04ping", b"$onFileEvent", b"$onDidChangeWindowFocus"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Reading a frame's header (`have` bytes of it so far).
    Header,
    /// Inside a payload: `left` bytes of it still to pass.
    Payload,
}

/// Reads a client's frames and says when one is its user's.
#[derive(Debug)]
pub struct FrameScanner {
    part: Part,
    header: [u8; 14],
    have: usize,
    /// The current frame.
    opcode: u8,
    mask: [u8; 4],
    at: u64,
    left: u64,
    len: u64,
    /// The first [`PREFIX`] payload bytes of the message, unmasked.
    prefix: Vec<u8>,
    /// Set once the stream is no WebSocket we can read: every byte counts.
    lost: bool,
    /// What passed so far, by kind (the proxy's metrics).
    pub counts: FrameCounts,
}

/// Client messages by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameCounts {
    /// A user's: anything but the two below.
    pub uses: u64,
    /// What an untouched tab sends by itself (`KeepAlive`, `Ack`, the RPCs of [`AUTOMATIC_RPCS`]).
    pub automatic: u64,
    /// Ping, pong, close.
    pub controls: u64,
}

impl Default for FrameScanner {
    fn default() -> Self {
        Self {
            part: Part::Header,
            header: [0; 14],
            have: 0,
            opcode: 0,
            mask: [0; 4],
            at: 0,
            left: 0,
            len: 0,
            prefix: Vec::with_capacity(PREFIX),
            lost: false,
            counts: FrameCounts::default(),
        }
    }
}

impl FrameScanner {
    /// Feeds bytes the client sent; whether any frame that ended in them
    /// (or a data frame long enough to judge) is its user's.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        if self.lost {
            return !bytes.is_empty();
        }
        let mut used = false;
        while !bytes.is_empty() {
            if self.lost {
                return true;
            }
            match self.part {
                Part::Header => {
                    let need = self.header_len();
                    let take = (need - self.have).min(bytes.len());
                    self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
                    self.have += take;
                    bytes = &bytes[take..];
                    // The length may tell us the header is longer still.
                    if self.have == self.header_len() {
                        used |= self.start_payload();
                    }
                }
                Part::Payload => {
                    let take = usize::try_from(self.left).unwrap_or(usize::MAX).min(bytes.len());
                    if !self.is_control() && self.prefix.len() < PREFIX {
                        let keep = take.min(PREFIX - self.prefix.len());
                        let at = self.at as usize;
                        self.prefix.extend(bytes[..keep].iter().enumerate().map(|(i, b)| b ^ self.mask[(at + i) % 4]));
                    }
                    self.at += take as u64;
                    self.left -= take as u64;
                    bytes = &bytes[take..];
                    if self.left == 0 {
                        used |= self.end_frame();
                    }
                }
            }
        }
        used
    }

    fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// How long this frame's header is, as far as we know it yet.
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let masked = self.header[1] & 0x80 != 0;
        let ext = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if masked { 4 } else { 0 }
    }

    /// The header is in: set up the payload. Returns whether an empty
    /// frame ended here as use.
    fn start_payload(&mut self) -> bool {
        let h = &self.header;
        if h[0] & 0x70 != 0 {
            // A reserved bit: compression or an extension we did not
            // agree to. We cannot read it; count everything from now on.
            self.lost = true;
            return true;
        }
        self.opcode = h[0] & 0x0f;
        let (len, rest) = match h[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => (u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]), 10),
            n => (u64::from(n), 2),
        };
        self.mask = if h[1] & 0x80 != 0 { [h[rest], h[rest + 1], h[rest + 2], h[rest + 3]] } else { [0; 4] };
        if !self.is_control() && self.opcode != 0 {
            // A new data message.
            self.prefix.clear();
            self.len = 0;
        }
        self.len += if self.is_control() { 0 } else { len };
        self.at = 0;
        self.left = len;
        self.have = 0;
        self.part = Part::Payload;
        if len == 0 { self.end_frame() } else { false }
    }

    /// A frame's payload has passed: judge it if it ends a message.
    fn end_frame(&mut self) -> bool {
        self.part = Part::Header;
        if self.is_control() {
            // Ping, pong, close: the connection's, never the user's.
            self.counts.controls += 1;
            return false;
        }
        let fin = self.header_fin();
        if !fin {
            return false;
        }
        let automatic = is_automatic(&self.prefix, self.len);
        if automatic {
            self.counts.automatic += 1;
        } else {
            self.counts.uses += 1;
        }
        !automatic
    }

    fn header_fin(&self) -> bool {
        // The header buffer was reset for the next frame only in `have`;
        // its first byte is still this frame's.
        self.header[0] & 0x80 != 0
    }
}

/// Whether a whole client message (its first bytes, its length) is one an
/// untouched workbench sends by itself.
fn is_automatic(prefix: &[u8], len: u64) -> bool {
    match prefix.first() {
        Some(&(VSCODE_ACK | VSCODE_KEEP_ALIVE)) => len == VSCODE_HEADER as u64,
        Some(&VSCODE_REGULAR) if prefix.len() > VSCODE_HEADER => {
            let body = &prefix[VSCODE_HEADER..];
            AUTOMATIC_RPCS.iter().any(|rpc| body.windows(rpc.len()).any(|w| w == *rpc))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn vscode(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&7u32.to_be_bytes());
        m.extend_from_slice(&3u32.to_be_bytes());
        m.extend_from_slice(&(body.len() as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn heartbeats_and_control_frames_are_not_use() {
        let mut s = FrameScanner::default();
        assert!(!s.feed(&frame(true, 2, &vscode(VSCODE_KEEP_ALIVE, b""))));
        assert!(!s.feed(&frame(true, 2, &vscode(VSCODE_ACK, b""))));
        assert!(!s.feed(&frame(true, 9, b"ping")));
        assert!(!s.feed(&frame(true, 10, b"")));
        assert_eq!(s.counts, FrameCounts { uses: 0, automatic: 2, controls: 2 });
        // As the real workbench sends them (medforge-server/tests/fair_sharing_browser.rs measured these).
        let telemetry_ping = [
            0x01, 0, 0, 0x01, 0xe9, 0, 0, 0x01, 0xe0, 0, 0, 0, 0x19, 0x04, 0x04, 0x06, 0x64, 0x06, 0xe4, 0x03, 0x01,
            0x09, b't', b'e', b'l', b'e', b'm', b'e', b't', b'r', b'y', 0x01, 0x04, b'p', b'i', b'n', b'g', 0x00,
        ];
        assert!(!s.feed(&frame(true, 2, &telemetry_ping)));
        let mut file_event =
            vec![0x01, 0, 0, 0x02, 0xbc, 0, 0, 0x01, 0xa3, 0, 0, 0, 0x84, 0x01, 0, 0, 0, 0x2f, 0x57, 0x0c];
        file_event
            .extend_from_slice(b"$onFileEvent\x00\x00\x00m[{\"created\":[],\"changed\":[{\"path\":\"/launch\"}]}]");
        assert!(!s.feed(&frame(true, 2, &file_event)));
        assert!(!s.feed(&frame(true, 2, &vscode(1, b"\x01\x00\x00\x00\x29\x0f$onDidChangeWindowFocus\x00[false]"))));
        assert_eq!(s.counts.automatic, 5);
    }

    #[test]
    fn a_regular_message_text_and_other_apps_frames_are_use() {
        let mut s = FrameScanner::default();
        assert!(s.feed(&frame(true, 2, &vscode(1, b"terminal input: ls\r"))));
        // A telemetry RPC other than ping, and ping on another channel: use.
        assert!(s.feed(&frame(true, 2, &vscode(1, b"\x01\x09telemetry\x01\x03log"))));
        assert!(s.feed(&frame(true, 2, &vscode(1, b"\x01\x0eremoteterminal\x01\x04ping"))));
        assert!(s.feed(&frame(true, 1, b"{\"jupyter\":1}")));
        // 13 bytes that are no VS Code heartbeat.
        assert!(s.feed(&frame(true, 2, &[1; 13])));
        assert!(s.feed(&frame(true, 2, b"")));
    }

    #[test]
    fn frames_split_anywhere_and_fragmented_messages_are_read() {
        let mut stream = frame(true, 2, &vscode(VSCODE_KEEP_ALIVE, b""));
        let typed = vscode(1, &[b'x'; 300]);
        stream.extend(frame(false, 2, &typed[..100]));
        stream.extend(frame(true, 9, b"")); // a ping between fragments
        stream.extend(frame(true, 0, &typed[100..]));
        stream.extend(frame(true, 2, &vscode(VSCODE_ACK, b"")));
        for split in 1..stream.len() {
            let mut s = FrameScanner::default();
            let mut uses = 0;
            for chunk in stream.chunks(split) {
                uses += usize::from(s.feed(chunk));
            }
            assert_eq!(uses, 1, "chunks of {split}");
        }
        let mut one = FrameScanner::default();
        assert!(one.feed(&stream));
        let big = frame(true, 2, &vec![0u8; 70_000]);
        assert!(FrameScanner::default().feed(&big));
    }

    #[test]
    fn a_compressed_stream_counts_as_use() {
        let mut f = frame(true, 2, &vscode(VSCODE_KEEP_ALIVE, b""));
        f[0] |= 0x40;
        let mut s = FrameScanner::default();
        assert!(s.feed(&f));
        assert!(s.feed(&frame(true, 2, &vscode(VSCODE_ACK, b""))));
    }
}
