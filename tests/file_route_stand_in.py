"""The hosts' ``/file=`` route, as Gradio resolves it, behind a small local HTTP server (tests only).

Gradio reads the path after ``file=`` (URL-decoded) against the server's working
directory, the WebUI's folder, refuses dot files and folders (403), answers 404
for a missing file, and serves a file only from allowed places (else 403):
Gradio 3.41 (A1111 v1.10.1) anything under the working directory or an allowed
path; Gradio 4.40 (Forge) only allowed paths (``--gradio-allowed-path``, whose
default is the WebUI's data folder). Other paths are served from ``pages``.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def gradio_abspath(route_path: str, webui_dir: Path) -> Path:
    """Gradio's ``utils.abspath``: an absolute path as given; a relative one joined to the working
    directory, resolved only when no part of it is a symbolic link."""
    path = Path(route_path)
    if path.is_absolute():
        return path
    joined = webui_dir / path
    if joined.is_symlink() or any(parent.is_symlink() for parent in joined.parents):
        return joined
    return joined.resolve()


def _inside(path: Path, folder: Path) -> bool:
    try:
        return not str(path.relative_to(folder)).startswith("..")
    except ValueError:
        return False


def file_status(route_path: str, webui_dir: Path, allowed: list[Path], serves_working_dir: bool) -> int:
    path = gradio_abspath(route_path, webui_dir)
    if any(part.startswith(".") for part in path.parts) or path.is_dir():
        return 403
    if not path.is_file():
        return 404
    places = [Path(p) for p in allowed] + ([webui_dir] if serves_working_dir else [])
    return 200 if any(_inside(path, place) for place in places) else 403


class FileRouteServer:
    def __init__(self, webui_dir: Path, allowed: list[Path], serves_working_dir: bool, pages: dict[str, bytes]):
        route = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                target = urlsplit(self.path).path
                if target.startswith("/file="):
                    name = unquote(target[len("/file="):])
                    status = file_status(name, webui_dir, allowed, serves_working_dir)
                    body = (webui_dir / name).read_bytes() if status == 200 else b""
                    route.requests.append((name, status))
                else:
                    body = pages.get(target)
                    status = 200 if body is not None else 404
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if target.endswith(".html") or target == "/"
                                 else "application/javascript")
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.requests: list[tuple[str, int]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
