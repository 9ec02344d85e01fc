//! A real smart-HTTP git server for the transport tests: lighttpd in front of git's own
//! `git-http-backend` (see shared/recipes/smart-http-server.md), bound to 127.0.0.1 on a free
//! port, in the foreground as a child process, killed by its pid when the [`HttpServer`]
//! drops. Each test starts its own and gets bare repositories under its document root.
//! Repositories whose name starts with `private` need basic authentication as
//! [`USER`]:[`PASSWORD`] for everything, those starting with `guarded` only to push; [`HttpServer::start_tls()`] serves HTTPS with a certificate from a
//! throwaway CA made by the `openssl` command.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::util::git;

/// The user allowed into `private*` repositories.
pub const USER: &str = "alice";
/// Her password (with an `@`, which a URL must escape as `%40`).
pub const PASSWORD: &str = "s3cret@pass";

/// A running lighttpd + git-http-backend; stopped on drop.
pub struct HttpServer {
    root: tempfile::TempDir,
    _state: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// For HTTPS: the CA certificate (PEM) that signed the server's certificate.
    pub ca_pem: Option<Vec<u8>>,
}

impl HttpServer {
    /// Start a plain-HTTP server.
    pub fn start() -> Self {
        Self::start_with(false, None)
    }

    /// Start an HTTPS server.
    pub fn start_tls() -> Self {
        Self::start_with(true, None)
    }

    /// Start a plain-HTTP server whose CGI is the program `wrap(state dir, git-http-backend)`
    /// writes and returns (a script in front of the backend, to make the server stricter).
    pub fn start_wrapped(wrap: fn(&Path, &str) -> PathBuf) -> Self {
        Self::start_with(false, Some(wrap))
    }

    /// Start a server, retrying on another port if the chosen one is taken meanwhile.
    fn start_with(tls: bool, wrap: Option<fn(&Path, &str) -> PathBuf>) -> Self {
        let root = tempfile::tempdir().expect("document root");
        let state = tempfile::tempdir().expect("state dir");
        let backend = String::from_utf8(git(&["--exec-path"], None))
            .expect("utf-8 exec path")
            .trim()
            .to_owned()
            + "/git-http-backend";
        let backend = match wrap {
            Some(wrap) => wrap(state.path(), &backend).display().to_string(),
            None => backend,
        };
        std::fs::write(state.path().join("users"), format!("{USER}:{PASSWORD}\n"))
            .expect("write the user file");
        let ca_pem = tls.then(|| make_certificates(state.path()));
        for _attempt in 0..10 {
            let port = free_port();
            let config = state.path().join("lighttpd.conf");
            std::fs::write(
                &config,
                config_text(root.path(), state.path(), port, &backend, tls),
            )
            .expect("write lighttpd.conf");
            let mut child = Command::new("lighttpd")
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("lighttpd runs (apt-get install -y lighttpd)");
            if wait_until_listening(&mut child, port) {
                return Self {
                    root,
                    _state: state,
                    port,
                    child: Some(child),
                    ca_pem,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("lighttpd did not start; see its error log");
    }

    /// A new bare repository `<name>.git` served by this server (pushes allowed); its path.
    pub fn bare_repo(&self, name: &str) -> PathBuf {
        let path = self.root.path().join(format!("{name}.git"));
        git(&["init", "-q", "--bare", path.to_str().unwrap()], None);
        git(
            &[
                "--git-dir",
                path.to_str().unwrap(),
                "config",
                "http.receivepack",
                "true",
            ],
            None,
        );
        path
    }

    /// The URL of repository `<name>.git`.
    pub fn url(&self, name: &str) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}/git/{name}.git", self.port)
    }

    /// Stop the server now (as a crash or an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Wait (bounded) until the port accepts connections; `false` if lighttpd exited (the port
/// was taken) or never listened.
fn wait_until_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A throwaway CA and a certificate it signs for 127.0.0.1 (cert + key in `server.pem`, as
/// lighttpd wants); the CA certificate's PEM.
pub fn make_certificates(state: &Path) -> Vec<u8> {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(state)
            .output()
            .expect("the openssl command runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=gitmq test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&ca);
    let mut leaf = vec!["req", "-subj", "/CN=127.0.0.1"];
    leaf.extend(ec);
    leaf.extend(["-keyout", "leaf.key", "-out", "leaf.csr"]);
    openssl(&leaf);
    std::fs::write(
        state.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write leaf.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
    let mut pem = std::fs::read(state.join("leaf.pem")).expect("leaf.pem");
    pem.extend(std::fs::read(state.join("leaf.key")).expect("leaf.key"));
    std::fs::write(state.join("server.pem"), pem).expect("write server.pem");
    std::fs::read(state.join("ca.pem")).expect("ca.pem")
}

fn config_text(root: &Path, state: &Path, port: u16, backend: &str, tls: bool) -> String {
    let (root, state) = (root.display(), state.display());
    let (tls_module, tls) = if tls {
        (
            r#", "mod_openssl""#,
            format!("ssl.engine = \"enable\"\nssl.pemfile = \"{state}/server.pem\"\n"),
        )
    } else {
        ("", String::new())
    };
    // Request bodies stay buffered (lighttpd's default): CGI needs CONTENT_LENGTH.
    format!(
        r#"server.modules = ( "mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi"{tls_module} )
{tls}auth.backend = "plain"
auth.backend.plain.userfile = "{state}/users"
auth.require = ( "/git/private" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
$HTTP["url"] =~ "^/git/guarded[^/]*/git-receive-pack$" {{
  auth.require = ( "/git/" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
}}
$HTTP["querystring"] =~ "service=git-receive-pack" {{
  $HTTP["url"] =~ "^/git/guarded" {{
    auth.require = ( "/git/" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
  }}
}}
server.bind          = "127.0.0.1"
server.port          = {port}
server.document-root = "{root}"
server.errorlog      = "{state}/error.log"
server.upload-dirs   = ( "{state}" )
server.stream-response-body = 2
server.max-request-size = 0
alias.url = ( "/git/" => "{backend}/" )
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ( "" => "" )
  setenv.set-environment = (
    "GIT_PROJECT_ROOT"    => "{root}",
    "GIT_HTTP_EXPORT_ALL" => "1",
    "GIT_CONFIG_NOSYSTEM" => "1",
    "PATH"                => "/usr/local/bin:/usr/bin:/bin" )
}}
"#
    )
}
