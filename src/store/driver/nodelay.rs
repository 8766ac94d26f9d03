//! TCP_NODELAY on the connections to PostgreSQL.
//!
//! sqlx 0.9.0 opens its TCP connections with Nagle's algorithm on (transact-rs/sqlx#4335; the fix
//! is merged upstream but not released). A request larger than one segment, such as a batch of
//! submissions or of imported tools, then sends its last segment only once the server has
//! acknowledged the earlier ones, and the server delays that acknowledgement by 40 ms on Linux:
//! every large statement waited 40 ms. The pool cannot hand out its sockets, so after each new
//! connection this sets TCP_NODELAY on the process's TCP sockets whose peer listens on the
//! database's port (that includes the new one; setting it again on the others changes nothing).

/// Set TCP_NODELAY on this process's TCP sockets connected to `port`; how many were found.
#[cfg(target_os = "linux")]
pub(super) fn to_port(port: u16) -> usize {
    use std::os::fd::BorrowedFd;
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut found = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // Only sockets: the link of a socket's fd reads `socket:[inode]`.
        if !std::fs::read_link(entry.path())
            .map(|l| l.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false)
        {
            continue;
        }
        // SAFETY: the descriptor is only borrowed for two calls that leave it open. Should
        // another thread close it and the number be reused meanwhile, the calls act on that
        // descriptor instead, which at worst turns off Nagle's algorithm on another socket of
        // this process (or fails harmlessly on something that is no TCP socket).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let to_db = sock
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if to_db && sock.set_tcp_nodelay(true).is_ok() {
            found += 1;
        }
    }
    found
}

/// Elsewhere the connections keep the operating system's default.
#[cfg(not(target_os = "linux"))]
pub(super) fn to_port(_port: u16) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn sets_nodelay_on_sockets_to_the_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (served, _) = listener.accept().unwrap();
        assert!(!client.nodelay().unwrap());
        assert!(super::to_port(port) >= 1);
        assert!(client.nodelay().unwrap());
        // The accepted side's peer is the client's port, not the listener's: left alone.
        assert!(!served.nodelay().unwrap());
    }
}
