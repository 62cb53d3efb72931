import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vxlib.audio import AudioError
from vxlib.eval.__main__ import main
from vxlib.eval.metrics import evaluate_system, find_audio, markdown_table, results_table, utterance_key

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folders(speech_dirs, sentences, tmp_path_factory):
    """converted/ = u1, u2 in the other voice; ground_truth/ = u1..u3 in the target voice (11.5 s,
    named like LLVC dataset files); texts.json = the three texts."""
    root = tmp_path_factory.mktemp("cli")
    (root / "converted").mkdir()
    (root / "ground_truth").mkdir()
    for key in sentences:
        shutil.copy(speech_dirs["voice"] / f"{key}.wav", root / "ground_truth" / f"{key}_converted.wav")
    for key in ("u1", "u2"):
        shutil.copy(speech_dirs["other"] / f"{key}.wav", root / "converted" / f"{key}.wav")
    (root / "texts.json").write_text(json.dumps(sentences))
    return root


def test_keys_pair_dataset_names():
    assert utterance_key("dev/12-3_converted.wav") == "12-3" == utterance_key("12-3_original.flac")
    assert utterance_key("out/12-3.wav") == "12-3"


def test_cli_writes_json_and_markdown(folders, capsys):
    out = folders / "results" / "eval.json"
    rc = main(["--converted", str(folders / "converted"), "--ground_truth", str(folders / "ground_truth"),
               "--metrics", "resemblyzer", "speaker_sim", "dnsmos", "wer", "mcd",
               "--texts", str(folders / "texts.json"), "--concat_ground_truth", "--eval_gt",
               "--name", "other voice", "--out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    gt, system = data["systems"]
    assert [gt["system"], system["system"]] == ["ground truth", "other voice"]
    assert [u["utterance"] for u in system["utterances"]] == ["u1", "u2"]
    s, g = system["summary"], gt["summary"]
    assert g["speaker_sim"] > 0.85 and s["speaker_sim"] < g["speaker_sim"] - 0.1
    assert s["resemblyzer"] < g["resemblyzer"]
    assert "mcd_db" not in g and s["mcd_db"] > 1.0  # paired metrics are skipped for the gt row
    assert 0.0 <= s["wer"] <= 0.5 and s["ref_words"] == 9 + 12
    assert all(1.0 <= x["dnsmos_ovrl"] <= 5.0 for x in system["utterances"])
    table = out.with_suffix(".md").read_text()
    assert table.splitlines()[0].startswith("| system | DNSMOS OVRL | DNSMOS P.808 | Resemblyzer | target sim | WER")
    assert "| ground truth |" in table and "| other voice |" in table
    assert table.strip() in capsys.readouterr().out


def test_module_entry_point_on_identical_pairs(folders, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(folders / "ground_truth" / "u1_converted.wav", one)
    run = subprocess.run([sys.executable, "-m", "vxlib.eval", "--converted", str(one), "--ground-truth", str(one),
                          "--metrics", "mcd", "f0", "--f0-method", "dio", "--name", "self"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    row = run.stdout.strip().splitlines()[-1]
    assert row.startswith("| self | 0.000 | 0.000 | 1.000 | 0.000 |")  # MCD, f0 RMSE cents, f0 corr, VDE


def test_cli_errors_name_the_problem(folders, tmp_path, capsys):
    misaligned = tmp_path / "misaligned"
    misaligned.mkdir()
    shutil.copy(folders / "ground_truth" / "u2_converted.wav", misaligned / "u1.wav")  # 4.5 s vs 3.4 s
    rc = main(["--converted", str(misaligned), "--ground_truth", str(folders / "ground_truth"), "--metrics", "f0"])
    assert rc == 2
    assert "differ by 1026 ms" in capsys.readouterr().err
    assert main(["--converted", str(folders / "converted"), "--metrics", "wer"]) == 2
    assert "needs texts" in capsys.readouterr().err
    assert main(["--converted", str(tmp_path / "void"), "--metrics", "dnsmos"]) == 2
    assert "void: not a directory" in capsys.readouterr().err


def test_folder_errors(tmp_path):
    with pytest.raises(AudioError, match="not a directory"):
        find_audio(tmp_path / "missing")
    with pytest.raises(AudioError, match="no audio files"):
        find_audio(tmp_path)
    (tmp_path / "a").mkdir()
    for name in ("a/7_original.wav", "7.wav"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(AudioError, match="same utterance key '7'"):
        find_audio(tmp_path)


def test_tables_from_summaries():
    rows = [{"system": "LLVC", "e2e_latency_ms_mean": 19.7, "speed": 2.77, "resemblyzer": 0.829},
            {"system": "ground truth", "resemblyzer": 0.898}]
    frame = results_table(rows)
    assert list(frame.columns) == ["e2e_latency_ms_mean", "speed", "resemblyzer"]
    assert frame.loc["ground truth", "resemblyzer"] == 0.898
    md = markdown_table(rows).splitlines()
    assert md[0] == "| system | e2e latency (ms) | speed (x RT) | Resemblyzer |"
    assert md[3] == "| ground truth | – | – | 0.898 |"


def test_evaluate_system_rejects_unknown_metrics(folders):
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_system(folders / "converted", metrics=["pesq"])
