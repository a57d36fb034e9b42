"""Bad config files: exit 2 before anything is opened, one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hubagent import cli, config
from hubagent.errors import ConfigError

GOOD = """
[hub]
id = "hub-7"
state_dir = "{state}"
"""

BAD = [
    # (name, file text, key that must be named, words the reason must contain)
    ("unknown key", '[hub]\nid = "h"\nstate_dri = "/x"\n', "hub.state_dri", "unknown key"),
    ("unknown section", '[hub]\nid = "h"\n[mqttt]\nhost = "x"\n', "mqttt", "unknown key"),
    ("wrong type", '[hub]\nid = "h"\n[mqtt]\nhost = "b"\nport = "1883"\n', "mqtt.port", "expected `int`"),
    ("out of range", '[hub]\nid = "h"\n[mqtt]\nhost = "b"\nport = 70000\n', "mqtt.port", "<= 65535"),
    ("window too small", '[hub]\nid = "h"\n[mqtt]\nhost = "b"\nmax_unacked = 5\n', "mqtt.max_unacked", ">= 10"),
    ("missing required", '[hub]\nstate_dir = "/x"\n', "hub.id", "required key is missing"),
    ("missing table", '[mqtt]\nhost = "b"\n', "hub", "missing"),
    ("bad hub id", '[hub]\nid = "no spaces allowed"\n', "hub.id", "matching regex"),
    ("unknown driver", '[hub]\nid = "h"\n[scanners.front]\ndriver = "laser"\n',
     "scanners.front.driver", "known: camera, hid, serial, sim"),
    ("no driver", '[hub]\nid = "h"\n[printers.label]\nhost = "x"\n', "printers.label.driver", "required"),
    ("device not a table", '[hub]\nid = "h"\n[scanners]\nfront = 3\n', "scanners.front", "expected a table"),
    ("bad toml", '[hub\nid = "h"\n', "", "not valid TOML"),
    ("parcel labels without a printer", '[hub]\nid = "h"\n[locker_policy]\nprint_parcel_labels = true\n',
     "locker_policy.print_parcel_labels", "need a [printers.NAME] printer"),
]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hub.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name,text,key,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_file_key_and_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              name: str, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        config.load(path)
    assert exc.value.key == key
    assert reason in exc.value.reason
    assert cli.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and key in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert cli.main(["check-config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "No such file" in err


def test_missing_extra_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Make OpenCV uninstallable for this process, the way Python documents it.
    monkeypatch.setitem(sys.modules, "cv2", None)
    path = write(tmp_path, '[hub]\nid = "h"\n[scanners.cam]\ndriver = "camera"\nsource = 0\n')
    assert cli.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "scanners.cam.driver" in err and "cv2" in err and "hubagent[camera]" in err


def test_run_with_bad_config_exits_2_before_opening_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = write(tmp_path, f'[hub]\nid = "h"\nstate_dir = "{state}"\nlog_levle = "debug"\n')
    proc = subprocess.run([sys.executable, "-m", "hubagent", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "hub.log_levle: unknown key" in proc.stderr
    assert not state.exists(), "nothing may be created before the config is valid"


def test_good_config_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.format(state=tmp_path / "s"))
    cfg = config.load(path)
    assert cfg.hub.id == "hub-7" and cfg.mqtt is None
    assert cli.main(["check-config", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("example", sorted(Path(__file__).parent.parent.glob("config/*.toml")))
def test_shipped_examples_are_valid(example: Path) -> None:
    config.load(example)


def test_zxing_decoder_without_its_extra_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)
    path = write(tmp_path, '[hub]\nid = "h"\n[scanners.cam]\ndriver = "camera"\nsource = 0\n'
                           'decoder = "zxing"\n')
    assert cli.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "scanners.cam.decoder" in err and "hubagent[datamatrix]" in err
