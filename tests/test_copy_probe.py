"""The synthetic copy probe: rows have the documented structure, bad settings are named, a run logs."""
import json

import pytest

from distill.copy_probe import ProbeData, build_parser, main


def _args(*argv):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("item_tokens,last", [(2, 192), (1, 0)])
def test_rows_put_the_target_list_right_before_the_turn_end_and_pad_the_answer(item_tokens, last):
    data = ProbeData(_args("--item-tokens", str(item_tokens), "--last-names", str(last)))
    t = data.tok
    for _ in range(20):
        prompt, answer = data.row()
        assert len(answer) == data.gen_length
        n = answer.index(t["eos"])
        target = answer[:n]
        assert all(x == t["eos"] for x in answer[n:])
        assert prompt[-3:] == [t["suffix_a"], t["suffix_b"], t["assistant"]]
        assert prompt[-3 - n:-3] == target
        assert target[0] == t["list_open"] and target[-1] == t["list_close"]
        names = [x for x in target if x < data.args.first_names + data.args.last_names]
        assert len(names) == len(set(names))


def test_no_separators_keeps_only_the_list_frame_and_the_canvas_length():
    plain = ProbeData(_args("--no-separators", "--distractor", "0"))
    framed = ProbeData(_args("--distractor", "0"))
    assert plain.gen_length == framed.gen_length
    t = plain.tok
    for _ in range(10):
        target = plain.row()[1]
        target = target[:target.index(t["eos"])]
        assert t["item_sep"] not in target and t["item_open"] not in target
        assert target[0] == t["list_open"] and target[-1] == t["list_close"] and len(target) % 2 == 0
    with pytest.raises(ValueError, match="--no-separators"):
        ProbeData(_args("--item-tokens", "1", "--last-names", "0", "--no-separators"))


def test_distractor_probability_controls_the_one_shot_turn():
    with_shot = ProbeData(_args("--distractor", "1"))
    without = ProbeData(_args("--distractor", "0"))
    user = with_shot.tok["user"]
    assert all(with_shot.row()[0].count(user) == 2 for _ in range(5))
    assert all(without.row()[0].count(user) == 1 for _ in range(5))


def test_bad_vocabulary_settings_name_the_flag():
    with pytest.raises(ValueError, match="--last-names"):
        ProbeData(_args("--item-tokens", "1"))
    with pytest.raises(ValueError, match="--first-names"):
        ProbeData(_args("--first-names", "4"))


def test_a_short_run_logs_finite_answer_ce(tmp_path):
    log = tmp_path / "probe.jsonl"
    main(["--steps", "3", "--batch-size", "4", "--width", "32", "--heads", "2", "--log", str(log), "--log-every", "1"])
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(0 < r["answer_ce"] < 20 for r in rows)


def test_bf16_and_weight_decay_flags_change_the_run_as_the_trainer_would(tmp_path):
    def run(*extra):
        log = tmp_path / f"probe{len(list(tmp_path.iterdir()))}.jsonl"
        main(["--steps", "4", "--batch-size", "4", "--width", "32", "--heads", "2", "--lr", "0.05", "--log", str(log),
              "--log-every", "1", *extra])
        return [json.loads(line)["answer_ce"] for line in log.read_text().splitlines()]

    base, decayed, bf16 = run(), run("--weight-decay", "0.5"), run("--bf16")
    assert base[0] == decayed[0] and base[1:] != decayed[1:]        # same init and data; the decay moves weights
    assert bf16[0] == pytest.approx(base[0], abs=0.05) and bf16 != base  # bf16 autocast: close, not identical


def test_real_rows_are_copy_bare_rows_of_the_reference_tokenizer(tmp_path):
    from distill.copy_probe import RealRows

    data = RealRows(_args("--real-rows"))
    prompt, answer = data.row()
    names = [i for i in answer if i != data.tok["eos"]]
    assert len(answer) == data.gen_length and prompt[0] == data.tok["bos"] and max(prompt + answer) < data.vocab_size
    assert any(prompt[k:k + len(names)] == names for k in range(len(prompt)))  # the answer is the prompt's list
    log = tmp_path / "real.jsonl"
    main(["--real-rows", "--steps", "2", "--batch-size", "4", "--width", "32", "--heads", "2", "--log", str(log),
          "--log-every", "1"])
    assert all(0 < json.loads(line)["answer_ce"] < 20 for line in log.read_text().splitlines())
