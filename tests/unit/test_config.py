from edge_os.config import ENV_VARS, env_help, settings


def test_every_env_var_is_in_help():
    text = env_help()
    for var in ENV_VARS:
        assert var.name in text


def test_settings_read_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_OS_HOME", str(tmp_path))
    monkeypatch.setenv("EDGE_OS_THREADS", "3")
    s = settings()
    assert s.home == tmp_path
    assert s.threads == 3
