//! A second, independent smart-HTTP git server for the tests: nginx in front of fcgiwrap
//! running git's own `git-http-backend` (Debian packages `nginx-light` or `nginx`, and
//! `fcgiwrap`; `.ci/test` installs them), bound to 127.0.0.1 on a free port, both in the
//! foreground as child processes of the test, stopped by their pids when the
//! [`NginxServer`] drops. With [`Auth::Basic`] every request needs HTTP basic authentication
//! (nginx `auth_basic`), and git-http-backend sees the user as `REMOTE_USER`, so pushes need
//! no `http.receivepack`.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::util::git;

/// Whether the server asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous fetch and push.
    None,
    /// Basic authentication as `crate::server::USER` for everything.
    Basic,
}

/// A running nginx + fcgiwrap + git-http-backend; stopped on drop.
pub struct NginxServer {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
    port: u16,
    auth: Auth,
    nginx: Option<Child>,
    fcgiwrap: Option<Child>,
}

impl NginxServer {
    /// Start one, retrying on another port if the chosen one is taken meanwhile.
    pub fn start(auth: Auth) -> Self {
        let root = tempfile::tempdir().expect("document root");
        let state = tempfile::tempdir().expect("state dir");
        let backend = String::from_utf8(git(&["--exec-path"], None))
            .expect("utf-8 exec path")
            .trim()
            .to_owned()
            + "/git-http-backend";
        std::fs::write(
            state.path().join("htpasswd"),
            format!(
                "{}:{{PLAIN}}{}\n",
                crate::server::USER,
                crate::server::PASSWORD
            ),
        )
        .expect("write htpasswd");
        let socket = state.path().join("fcgiwrap.sock");
        let fcgiwrap = Command::new("fcgiwrap")
            .arg("-s")
            .arg(format!("unix:{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fcgiwrap runs (apt-get install -y fcgiwrap)");
        let mut server = Self {
            root,
            state,
            port: 0,
            auth,
            nginx: None,
            fcgiwrap: Some(fcgiwrap),
        };
        for _attempt in 0..10 {
            let port = crate::server::free_port();
            let config = server.state.path().join("nginx.conf");
            std::fs::write(
                &config,
                config_text(
                    server.root.path(),
                    server.state.path(),
                    port,
                    &backend,
                    auth,
                ),
            )
            .expect("write nginx.conf");
            let mut nginx = Command::new("nginx")
                .arg("-p")
                .arg(server.state.path())
                .arg("-e")
                .arg(server.state.path().join("error.log"))
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx runs (apt-get install -y nginx-light)");
            if wait_until_listening(&mut nginx, port) && socket.exists() {
                server.port = port;
                server.nginx = Some(nginx);
                return server;
            }
            let _ = nginx.kill();
            let _ = nginx.wait();
        }
        let log =
            std::fs::read_to_string(server.state.path().join("error.log")).unwrap_or_default();
        panic!("nginx did not start: {log}");
    }

    /// A new bare repository `<name>.git`: anonymous pushes allowed unless the server
    /// authenticates (then git-http-backend takes `REMOTE_USER`); its path.
    pub fn bare_repo(&self, name: &str) -> PathBuf {
        let path = self.root.path().join(format!("{name}.git"));
        let dir = path.to_str().unwrap();
        git(&["init", "-q", "--bare", dir], None);
        if self.auth == Auth::None {
            git(
                &["--git-dir", dir, "config", "http.receivepack", "true"],
                None,
            );
        }
        path
    }

    /// The URL of repository `<name>.git`, without credentials.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}.git", self.port)
    }
}

impl Drop for NginxServer {
    fn drop(&mut self) {
        for child in [self.nginx.take(), self.fcgiwrap.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Wait (bounded) until nginx accepts connections; `false` if it exited.
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

fn config_text(root: &Path, state: &Path, port: u16, backend: &str, auth: Auth) -> String {
    let (root, state) = (root.display(), state.display());
    let auth = match auth {
        Auth::None => String::new(),
        Auth::Basic => format!("auth_basic \"git\";\n      auth_basic_user_file {state}/htpasswd;"),
    };
    // One process (no master), in the foreground, so the test stops it by its pid. Workers
    // would run as `nobody` when started by root and could not reach fcgiwrap's socket in the
    // private state directory: `user root` (ignored with a warning when not root).
    format!(
        r"daemon off;
master_process off;
user root;
pid {state}/nginx.pid;
error_log {state}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {state}/client_body;
  fastcgi_temp_path {state}/fastcgi;
  proxy_temp_path {state}/proxy;
  uwsgi_temp_path {state}/uwsgi;
  scgi_temp_path {state}/scgi;
  client_max_body_size 0;
  server {{
    listen 127.0.0.1:{port};
    location ~ ^/git(/.*)$ {{
      {auth}
      fastcgi_pass unix:{state}/fcgiwrap.sock;
      fastcgi_buffering off;
      fastcgi_read_timeout 300s;
      fastcgi_param SCRIPT_FILENAME {backend};
      fastcgi_param PATH_INFO $1;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
      fastcgi_param REMOTE_USER $remote_user;
      fastcgi_param REMOTE_ADDR $remote_addr;
      fastcgi_param SERVER_PROTOCOL $server_protocol;
      fastcgi_param GIT_PROJECT_ROOT {root};
      fastcgi_param GIT_HTTP_EXPORT_ALL 1;
      fastcgi_param GIT_CONFIG_NOSYSTEM 1;
      fastcgi_param PATH /usr/local/bin:/usr/bin:/bin;
    }}
  }}
}}
"
    )
}
