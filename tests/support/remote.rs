//! Real storage servers on loopback for the `copy-to` tests, each started in
//! its own temporary directory and killed on drop: OpenSSH's `sshd` (reached
//! through rclone's SFTP backend) with a throwaway host key and user key, and
//! `rclone serve webdav`. rclone finds them through environment variables
//! (`RCLONE_CONFIG_<NAME>_TYPE=…`) that `env()` returns for a command.
//! Waits are bounded; nothing listens beyond 127.0.0.1.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where OpenSSH's server lives on Debian (not on a user's PATH).
const SSHD: &str = "/usr/sbin/sshd";

/// A loopback server that a test may stop and start again on its port.
pub struct RemoteServer {
    kind: Kind,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// The directory the remote's files are in, on this machine.
    pub root: PathBuf,
    /// The rclone remote's name (`sftp` or `dav`).
    pub name: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sftp,
    WebDav,
}

impl RemoteServer {
    /// An OpenSSH server for the current user, with keys made by
    /// `ssh-keygen` in its directory.
    pub fn sftp() -> Self {
        let server = Self::new(Kind::Sftp, "sftp");
        let dir = server.dir.path();
        for key in ["host_key", "user_key"] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
                .arg(dir.join(key))
                .status()
                .expect("ssh-keygen");
            assert!(status.success(), "ssh-keygen {key}");
        }
        fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        fs::write(
            dir.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host_key\nPidFile none\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nSubsystem sftp internal-sftp\n",
                port = server.port,
                dir = dir.display()
            ),
        )
        .unwrap();
        // sshd's privilege separation directory; the tests run as root.
        let _ = fs::create_dir_all("/run/sshd");
        let mut server = server;
        server.start();
        server
    }

    /// `rclone serve webdav` of its root.
    pub fn webdav() -> Self {
        let mut server = Self::new(Kind::WebDav, "dav");
        server.start();
        server
    }

    fn new(kind: Kind, name: &'static str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("backupctl-remote")
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(dir.path().join("rclone.conf"), "").unwrap();
        Self {
            kind,
            port: free_port(),
            dir,
            child: None,
            root,
            name,
        }
    }

    /// Starts the server (again, on the same port) and waits until it
    /// accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = fs::File::create(self.dir.path().join("server.log")).unwrap();
        let mut command = match self.kind {
            Kind::Sftp => {
                let mut c = Command::new(SSHD);
                c.args(["-D", "-e", "-f"])
                    .arg(self.dir.path().join("sshd_config"));
                c
            }
            Kind::WebDav => {
                let mut c = Command::new("rclone");
                c.args(["serve", "webdav"])
                    .arg(&self.root)
                    .args(["--addr", &format!("127.0.0.1:{}", self.port)])
                    .env("RCLONE_CONFIG", self.dir.path().join("rclone.conf"));
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server did not start: {}",
                fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (connections in progress break).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // sshd's sessions are processes of their own, which a killed
            // listener leaves running (a dead machine would not): this
            // server's own descendants, by pid, go first.
            for pid in descendants(child.id()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `REMOTE:PATH` for `copy-to`, a directory `sub` inside the root.
    pub fn target(&self, sub: &str) -> String {
        match self.kind {
            Kind::Sftp => format!("{}:{}", self.name, self.root.join(sub).display()),
            Kind::WebDav => format!("{}:{sub}", self.name),
        }
    }

    /// The variables that make rclone reach this server as `self.name`.
    pub fn env(&self) -> Vec<(String, String)> {
        let upper = self.name.to_uppercase();
        let var = |key: &str| format!("RCLONE_CONFIG_{upper}_{key}");
        let mut vars = vec![(
            "RCLONE_CONFIG".to_string(),
            self.dir.path().join("rclone.conf").display().to_string(),
        )];
        match self.kind {
            Kind::Sftp => {
                let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
                vars.extend([
                    (var("TYPE"), "sftp".to_string()),
                    (var("HOST"), "127.0.0.1".to_string()),
                    (var("PORT"), self.port.to_string()),
                    (var("USER"), user),
                    (
                        var("KEY_FILE"),
                        self.dir.path().join("user_key").display().to_string(),
                    ),
                ]);
            }
            Kind::WebDav => vars.extend([
                (var("TYPE"), "webdav".to_string()),
                (var("URL"), format!("http://127.0.0.1:{}", self.port)),
                (var("VENDOR"), "other".to_string()),
            ]),
        }
        vars
    }

    /// The live `rclone rcd` processes of this server's clients.
    pub fn rclone_daemons(&self) -> Vec<RcloneDaemon> {
        rclone_daemons(&self.dir.path().join("rclone.conf"))
    }

    /// The sorted names in the directory `sub` of the root.
    pub fn listing(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root.join(sub))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An `rclone rcd` process, as /proc shows it.
pub struct RcloneDaemon {
    pub pid: u32,
    /// Its command line, as `ps` shows it to every user.
    pub args: Vec<String>,
    environ: Vec<String>,
}

impl RcloneDaemon {
    /// The value of `key` in its environment.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.environ
            .iter()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The live `rclone rcd` processes whose environment names `rclone_config`
/// (a test's own file) as `RCLONE_CONFIG`: only this test's.
pub fn rclone_daemons(rclone_config: &Path) -> Vec<RcloneDaemon> {
    let wanted = format!("RCLONE_CONFIG={}", rclone_config.display());
    let split = |bytes: Vec<u8>| -> Vec<String> {
        bytes
            .split(|&b| b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect()
    };
    all_pids()
        .into_iter()
        .filter_map(|pid| {
            let args = split(fs::read(format!("/proc/{pid}/cmdline")).ok()?);
            let environ = split(fs::read(format!("/proc/{pid}/environ")).ok()?);
            (args.iter().any(|a| a == "rcd") && environ.contains(&wanted)).then_some(RcloneDaemon {
                pid,
                args,
                environ,
            })
        })
        .collect()
}

/// Whether any process's command line (what `ps` shows every user) holds
/// `text`.
pub fn any_command_line_holds(text: &str) -> bool {
    all_pids().into_iter().any(|pid| {
        fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|line| String::from_utf8_lossy(&line).contains(text))
    })
}

/// The ports `pid` listens on over TCP (IPv4), each with whether it is
/// bound to 127.0.0.1 only; from its socket descriptors and
/// /proc/PID/net/tcp.
pub fn listening_ports(pid: u32) -> Vec<(u16, bool)> {
    let sockets: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(
                        link.strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, port) = fields.get(1)?.split_once(':')?;
            let (state, inode) = (*fields.get(3)?, *fields.get(9)?);
            if state != "0A" || !sockets.iter().any(|s| s == inode) {
                return None;
            }
            Some((u16::from_str_radix(port, 16).ok()?, address == "0100007F"))
        })
        .collect()
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process below `pid`, children before their own children, read
/// from /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|p| {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let ppid = stat.rsplit(')').next()?.split_whitespace().nth(1)?;
            Some((p, ppid.parse().ok()?))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// A port nobody listens on now (the kernel's pick, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
