"""What an operator meets first: settings the desk refuses to start with, said in one line
(no traceback), the embedded desk still starting on its defaults, and ``flask create-agent``
refusing what is not an agent; and the README's production settings being real ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from helpdesk.config import Defaults
from helpdesk.extensions import db
from helpdesk.models import Agent
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {"HELPDESK_REDIS_URL": "redis://127.0.0.1:6379/0", "HELPDESK_JOBS": "rq"}


def env(tmp_path, **settings: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    return {**base, "FLASK_APP": "wsgi", "HELPDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'desk.db'}", **settings}


def flask(tmp_path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", *args], env=env(tmp_path, **settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("command", [["worker"], ["init-db"]])
def test_production_refuses_the_development_secret_key(tmp_path, command):
    out = flask(tmp_path, *command, **PRODUCTION)
    assert out.returncode != 0
    assert "HELPDESK_SECRET_KEY is not set" in out.stderr and "forge" in out.stderr, out.stderr
    assert "secrets.token_hex(32)" in out.stderr
    assert "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("settings", [{"HELPDESK_PUBLIC_URL": "https://desk.example.jp"},
                                      {"HELPDESK_PROXY_FIX": "1"}])
def test_a_desk_served_over_https_or_behind_a_proxy_refuses_it_too(tmp_path, settings):
    out = flask(tmp_path, "init-db", **settings)
    assert out.returncode != 0 and "HELPDESK_SECRET_KEY is not set" in out.stderr, out.stderr


def test_gunicorn_does_not_serve_with_the_development_secret_key(tmp_path):
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:app"],
                         env=env(tmp_path, **PRODUCTION), cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode != 0
    assert "HELPDESK_SECRET_KEY is not set" in out.stderr


def test_an_empty_secret_key_is_refused_everywhere(tmp_path):
    out = flask(tmp_path, "init-db", HELPDESK_SECRET_KEY="")
    assert out.returncode != 0 and "HELPDESK_SECRET_KEY is empty" in out.stderr, out.stderr


def test_the_embedded_desk_starts_with_the_development_key_and_a_warning(tmp_path):
    out = flask(tmp_path, "init-db")
    assert out.returncode == 0, out.stderr
    assert "HELPDESK_SECRET_KEY is not set; using the development key" in out.stderr


def test_production_starts_with_a_secret_key(tmp_path):
    out = flask(tmp_path, "init-db", HELPDESK_SECRET_KEY="a-long-random-production-key",
                HELPDESK_PUBLIC_URL="https://desk.example.jp", HELPDESK_PROXY_FIX="1")
    assert out.returncode == 0, out.stderr
    assert "HELPDESK_SECRET_KEY" not in out.stderr


@pytest.mark.parametrize("value", ["celery", "1", '["rq"]'])
def test_a_bad_jobs_value_is_one_line_naming_the_allowed_ones(tmp_path, value):
    out = flask(tmp_path, "init-db", HELPDESK_JOBS=value)
    assert out.returncode != 0
    assert "HELPDESK_JOBS must be one of thread, rq, inline" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr, out.stderr


def test_rq_jobs_without_redis_is_refused(tmp_path):
    out = flask(tmp_path, "init-db", HELPDESK_JOBS="rq", HELPDESK_SECRET_KEY="k" * 32)
    assert out.returncode != 0 and "HELPDESK_JOBS=rq needs HELPDESK_REDIS_URL" in out.stderr, out.stderr


@pytest.mark.parametrize("value", ["yes please", "-1", '{"x_host": true}', '{"x_forwarded": 1}'])
def test_a_bad_proxy_fix_value_is_refused(tmp_path, value):
    out = flask(tmp_path, "init-db", HELPDESK_PROXY_FIX=value, HELPDESK_SECRET_KEY="k" * 32)
    assert out.returncode != 0 and "HELPDESK_PROXY_FIX must be" in out.stderr, out.stderr


# ---- flask create-agent -------------------------------------------------------------------------

@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two words@example.jp", "山田 <y@example.jp>", ""])
def test_create_agent_refuses_a_bad_email(runner, email):
    result = runner.invoke(args=["create-agent", "--email", email, "--name", "山田", "--password", "long enough pw"])
    assert result.exit_code == 2
    assert "Invalid value for '--email'" in result.output and "not an email address" in result.output
    assert db.session.scalar(select(func.count()).select_from(Agent)) == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 121])
def test_create_agent_refuses_an_empty_or_too_long_name(runner, name):
    result = runner.invoke(args=["create-agent", "--email", "yamada@example.jp", "--name", name,
                                 "--password", "long enough pw"])
    assert result.exit_code == 2 and "Invalid value for '--name'" in result.output, result.output
    assert db.session.scalar(select(func.count()).select_from(Agent)) == 0


def test_create_agent_keeps_the_name_without_the_spaces_around_it(runner):
    result = runner.invoke(args=["create-agent", "--email", " Yamada@Example.jp ", "--name", " 山田 太郎 ",
                                 "--password", "long enough pw"])
    assert result.exit_code == 0, result.output
    agent = db.session.scalar(select(Agent))
    assert (agent.email, agent.name) == ("yamada@example.jp", "山田 太郎")


# ---- the README -----------------------------------------------------------------------------------

def test_readme_production_section_names_real_settings():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Production"):]
    section = section[:section.index("\n## ", 1)]
    named = set(re.findall(r"HELPDESK_([A-Z_]+)", section))
    assert named <= set(vars(Defaults)), named - set(vars(Defaults))
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "JOBS", "PUBLIC_URL", "PROXY_FIX", "SOCKETIO_CHANNEL",
            "JOBS_QUEUE", "UPLOAD_DIR"} <= named


# ---- database and Redis URLs --------------------------------------------------------------------

@pytest.mark.parametrize(("url", "said"), [
    ("notaurl", "is not a database URL"),
    ("postgresql://helpdesk:s3cret@db:five/helpdesk", "is not a database URL"),
    ("mysql://helpdesk:s3cret@db/helpdesk", "runs on SQLite or PostgreSQL, not mysql"),
    ("postgresql+psycopg2://helpdesk:s3cret@db/helpdesk", "driver that is not installed"),
    ("", "HELPDESK_DATABASE_URL is empty"),
])
def test_a_bad_database_url_is_one_line_without_the_password(tmp_path, url, said):
    out = flask(tmp_path, "init-db", HELPDESK_DATABASE_URL=url, HELPDESK_SECRET_KEY="k" * 32)
    assert out.returncode != 0
    assert said in out.stderr and "postgresql://user:password@host:5432/dbname" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "No such command" not in out.stderr, out.stderr
    assert "s3cret" not in out.stderr, out.stderr


@pytest.mark.parametrize("url", ["localhost:6379", "6379", "http://redis:6379/0", "redis://:s3cret@redis:port/0"])
def test_a_bad_redis_url_is_one_line_without_the_password(tmp_path, url):
    out = flask(tmp_path, "init-db", HELPDESK_REDIS_URL=url, HELPDESK_JOBS="rq", HELPDESK_SECRET_KEY="k" * 32)
    assert out.returncode != 0
    assert "HELPDESK_REDIS_URL" in out.stderr and "is not a Redis URL" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "s3cret" not in out.stderr, out.stderr


# ---- migrations ---------------------------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.slow
def test_servers_upgrading_one_postgresql_database_at_once_all_start(tmp_path):
    """Every container of a desk runs `flask init-db` as it starts: on an empty database one of
    them migrates and the others wait for it, instead of failing on the tables it is creating."""
    import uuid

    import psycopg

    from tests.conftest import PG_BASE, pg_available

    if not pg_available():
        pytest.skip("needs PostgreSQL")
    name = f"hd_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = env(tmp_path, HELPDESK_DATABASE_URL=PG_BASE.rsplit("/", 1)[0] + "/" + name,
                       HELPDESK_SECRET_KEY="k" * 32)
        procs = [subprocess.Popen([sys.executable, "-m", "flask", "init-db"], env=settings, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [err[-1500:] for _, err in outs]
        assert sum("Running upgrade  ->" in err for _, err in outs) == 1, [err[-1500:] for _, err in outs]
        with psycopg.connect(PG_BASE.rsplit("/", 1)[0] + "/" + name) as conn:
            (version,) = conn.execute("select version_num from alembic_version").fetchall()
        heads = subprocess.run([sys.executable, "-m", "flask", "db", "heads"], env=settings, cwd=ROOT,
                               capture_output=True, text=True, timeout=120, check=True).stdout
        assert version[0] in heads
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("url", ["desk.example.jp", "//desk.example.jp", "ftp://desk.example.jp", "https://",
                                 "https://desk.example.jp/?x=1", "8080"])
def test_a_public_url_that_links_nowhere_is_refused(tmp_path, url):
    out = flask(tmp_path, "init-db", HELPDESK_PUBLIC_URL=url, HELPDESK_SECRET_KEY="k" * 32)
    assert out.returncode != 0
    assert "HELPDESK_PUBLIC_URL must be the desk's address" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("url", ["https://desk.example.jp/", "http://127.0.0.1:5000", "https://example.jp/desk"])
def test_a_public_url_with_a_port_or_a_path_is_accepted(tmp_path, url):
    out = flask(tmp_path, "init-db", HELPDESK_PUBLIC_URL=url, HELPDESK_SECRET_KEY="k" * 32)
    assert out.returncode == 0, out.stderr
