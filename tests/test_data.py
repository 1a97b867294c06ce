"""Reading, mapping, filtering, splitting and negatives on real and hand-made tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine.batches import TrainSampler, contains
from engine.data import ColumnMapping, Filters, leave_last_two_out, load_raw, prepare
from engine.data.dataset import UNKNOWN_INTENT
from engine.errors import DataError
from tests.conftest import DATA, require_data


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def small_log(tmp_path: Path) -> Path:
    """Three users; user c has two interactions; item 40 has no category."""
    write(
        tmp_path / "interactions.csv",
        "user_id,item_id,timestamp\n"
        "a,10,3\na,20,1\na,30,2\na,40,4\n"
        "b,10,1\nb,30,2\nb,20,3\n"
        "c,10,1\nc,20,2\n",
    )
    write(
        tmp_path / "items.csv",
        "item_id,category,seller\n10,x,s1\n20,y,s1\n30,x,s2\n40,,s2\n",
    )
    return tmp_path


# ---- reading


def test_shared_layout_is_detected_and_mapped(ml_small):
    raw = load_raw(ml_small)
    assert raw.items is not None
    dataset = prepare(raw)
    assert dataset.mapping == ColumnMapping(
        "user_id", "item_id", "timestamp", "category", ("genres", "year"), "title"
    )
    assert dataset.num_users == 60
    assert dataset.item_names is not None and dataset.item_names[0] == "<pad>"


def test_recbole_atomic_files():
    raw_dir = require_data("ml-100k") / "raw"
    raw = load_raw(raw_dir / "ml-100k.inter")
    assert raw.items_path == raw_dir / "ml-100k.item"
    assert list(raw.interactions.columns) == [
        "user_id",
        "item_id",
        "rating",
        "timestamp",
    ]
    dataset = prepare(raw)
    # class is a token_seq of genres: the first genre becomes the intent
    assert dataset.mapping.intent == "class"
    assert dataset.mapping.name == "movie_title"
    assert dataset.stats["interactions"] == 100_000
    assert any("first" in note for note in dataset.notes)


@pytest.mark.parametrize("sep,suffix", [(";", ".csv"), ("\t", ".tsv"), ("|", ".txt")])
def test_delimiters_are_sniffed(tmp_path, sep, suffix):
    rows = ["user,item,time", "1,5,1", "1,6,2", "1,7,3", "2,5,1", "2,7,2", "2,6,3"]
    path = write(
        tmp_path / f"log{suffix}", "\n".join(r.replace(",", sep) for r in rows)
    )
    dataset = prepare(load_raw(path), ColumnMapping("user", "item", "time"))
    assert dataset.stats["interactions"] == 6


def test_parquet_and_csv_give_the_same_hash(tmp_path):
    folder = small_log(tmp_path / "csv")
    inter = pd.read_csv(folder / "interactions.csv")
    items = pd.read_csv(folder / "items.csv")
    other = tmp_path / "pq"
    other.mkdir()
    inter.to_parquet(other / "interactions.parquet")
    items.to_parquet(other / "items.parquet")
    a, b = prepare(load_raw(folder)), prepare(load_raw(other))
    assert a.hash == b.hash


def test_windows_1252_text_is_read(tmp_path, caplog):
    text = "user,item,name\nu1,i1,Caf\xe9\nu1,i2,Na\xefve\nu1,i3,x\n"
    path = write(tmp_path / "log.csv", text, encoding="cp1252")
    dataset = prepare(load_raw(path), ColumnMapping("user", "item", name="name"))
    assert "Café" in set(dataset.item_names)
    # one warning per read, naming the first byte that is not UTF-8 (the é at 24)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{path} is not UTF-8 (byte 24); reading it as Windows-1252"]


def test_undecodable_bytes_past_the_sniffed_head_are_one_error(tmp_path, caplog):
    # a legacy file whose only byte that no encoding reads lies past the first 64 KiB
    rows = "".join(f"u{n % 50},i{n},{n}\n" for n in range(12_000))
    path = tmp_path / "log.csv"
    path.write_bytes(b"user,item,time\nu0,caf\xe9,0\n" + rows.encode() + b"u1,\x81,1\n")
    assert path.stat().st_size > 64 * 1024
    with pytest.raises(DataError, match=r"unreadable text encoding: byte 21 is not "
                       r"UTF-8 and byte \d{5,} is not Windows-1252"):  # fmt: skip
        load_raw(path)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


# ---- preparing


def test_time_order_unknown_intent_and_notes(tmp_path):
    dataset = prepare(load_raw(small_log(tmp_path)))
    a = list(dataset.user_ids).index("a")
    labels = dataset.item_ids[dataset.sequence(a)].tolist()
    assert labels == ["20", "30", "10", "40"]
    # the item without a category gets the explicit unknown intent, and it is reported
    intent_of_40 = dataset.intent_names[
        dataset.item_intent[list(dataset.item_ids).index("40")]
    ]
    assert intent_of_40 == UNKNOWN_INTENT
    assert dataset.stats["unknown_intent_items"] == 1
    assert any("no value in the intent column" in n for n in dataset.notes)
    assert any("fewer than 3 interactions" in n for n in dataset.notes)
    assert dataset.num_known_intents == 2


def test_other_intent_column_is_another_data_version(tmp_path):
    raw = load_raw(small_log(tmp_path))
    by_category = prepare(
        raw, ColumnMapping("user_id", "item_id", "timestamp", "category")
    )
    by_seller = prepare(raw, ColumnMapping("user_id", "item_id", "timestamp", "seller"))
    assert by_category.hash != by_seller.hash
    assert by_seller.num_intents == 2


def test_filters_and_statistics_before_and_after(tmp_path):
    raw = load_raw(small_log(tmp_path))
    dataset = prepare(raw, filters=Filters(min_item_freq=2, min_user_len=3))
    # item 40 (seen once) goes, then user c (2 items) goes
    assert dataset.stats_before["items"] == 4 and dataset.stats["items"] == 3
    assert dataset.stats_before["users"] == 3 and dataset.stats["users"] == 2
    assert dataset.stats["interactions"] == 6
    assert dataset.stats["density"] == pytest.approx(6 / (2 * 3))
    hist = dataset.stats_before["item_freq_hist"]
    assert dict(zip(hist["freq"], hist["items"])) == {1: 1, 3: 2, 2: 1}


@pytest.mark.parametrize(
    "keep,expected", [("first", ["1", "2", "3"]), ("last", ["2", "1", "3"])]
)
def test_duplicate_rows(tmp_path, keep, expected):
    path = write(tmp_path / "log.csv", "u,i,t\nx,1,1\nx,2,2\nx,1,3\nx,3,4\n")
    raw = load_raw(path)
    dataset = prepare(raw, ColumnMapping("u", "i", "t"), Filters(duplicates=keep))
    assert dataset.item_ids[dataset.sequence(0)].tolist() == expected
    kept = prepare(raw, ColumnMapping("u", "i", "t"))
    assert kept.stats["interactions"] == 4


def test_seeded_random_tie_break(tmp_path):
    rows = "u,i,t\n" + "".join(f"x,{i},1\n" for i in range(1, 30))
    raw = load_raw(write(tmp_path / "log.csv", rows))
    mapping = ColumnMapping("u", "i", "t")
    file_order = prepare(raw, mapping)
    shuffled = prepare(raw, mapping, Filters(tie_break="random", tie_seed=3))
    again = prepare(raw, mapping, Filters(tie_break="random", tie_seed=3))
    assert file_order.item_ids[file_order.sequence(0)].tolist() == [
        str(i) for i in range(1, 30)
    ]
    assert shuffled.hash == again.hash != file_order.hash


def test_dates_are_times(tmp_path):
    path = write(
        tmp_path / "log.csv", "u,i,t\nx,1,2021-03-02\nx,2,2021-03-01\nx,3,2021-03-05\n"
    )
    dataset = prepare(load_raw(path), ColumnMapping("u", "i", "t"))
    assert dataset.item_ids[dataset.sequence(0)].tolist() == ["2", "1", "3"]


# ---- splitting and negatives


def test_leave_last_two_out(tmp_path):
    dataset = prepare(load_raw(small_log(tmp_path)))
    split = leave_last_two_out(dataset, seed=0, num_negatives=2)
    a, c = list(dataset.user_ids).index("a"), list(dataset.user_ids).index("c")
    labels = dataset.item_ids
    assert labels[split.train_sequence(a)].tolist() == ["20", "30"]
    assert (
        labels[split.valid_target[a]] == "10" and labels[split.test_target[a]] == "40"
    )
    # a user with two interactions trains only
    assert labels[split.train_sequence(c)].tolist() == ["10", "20"]
    assert split.valid_target[c] == 0 and c not in split.eval_users


def test_test_items_never_reach_training_input(ciao_split):
    for user in ciao_split.eval_users[:300]:
        train = ciao_split.train_sequence(user)
        full = ciao_split.dataset.sequence(user)
        assert len(train) == len(full) - 2
        assert full[-1] == ciao_split.test_target[user]
        assert full[-2] == ciao_split.valid_target[user]


def test_evaluation_histories_end_before_their_target(ciao_split):
    """Validation reads only training items; test reads them plus the validation
    item; neither ever reads its own target."""
    from engine.batches import eval_inputs

    users = ciao_split.eval_users[:200]
    for which in ("valid", "test"):
        _, seqs, targets = eval_inputs(ciao_split, which, 50, users)
        for row, user in enumerate(users):
            train = ciao_split.train_sequence(user)
            history = train
            if which == "test":
                history = np.append(train, ciao_split.valid_target[user])
            real = seqs[row][seqs[row] > 0].numpy()
            assert np.array_equal(real, history[-50:])
            assert targets[row] == getattr(ciao_split, f"{which}_target")[user]


def test_negatives_avoid_history_and_are_seeded(ciao_split):
    dataset = ciao_split.dataset
    negatives = ciao_split.negatives
    assert negatives.shape == (len(ciao_split.eval_users), 100)
    for row, user in enumerate(ciao_split.eval_users):
        seen = set(dataset.sequence(user).tolist())
        assert not seen & set(negatives[row].tolist())
        assert len(set(negatives[row].tolist())) == 100
    same = leave_last_two_out(dataset, seed=0)
    other = leave_last_two_out(dataset, seed=1)
    assert np.array_equal(same.negatives, negatives)
    assert not np.array_equal(other.negatives, negatives)


def test_training_negatives_avoid_the_users_items_and_intents(ciao_split):
    sampler = TrainSampler(ciao_split, 20)
    generator = torch.Generator().manual_seed(3)
    batch = sampler.batch(torch.arange(200), generator)
    intent_of = ciao_split.dataset.item_intent
    for row, user in enumerate(batch.users.tolist()):
        train = ciao_split.train_sequence(user)
        real = batch.seq[row, 1:] > 0
        negatives = batch.neg[row][real].tolist()
        assert negatives and not set(negatives) & set(train.tolist())
        positives = intent_of[batch.seq[row, 1:][real].numpy()]
        drawn = batch.neg_intents[row][real].numpy()
        assert (drawn != positives).all()
        touched = set(intent_of[train].tolist())
        if len(touched) < ciao_split.dataset.num_intents:
            assert not touched & set(drawn.tolist())
    # padding positions get no negatives
    assert (batch.neg[batch.seq[:, 1:] == 0] == 0).all()


def test_sorted_key_lookup_agrees_with_isin():
    generator = torch.Generator().manual_seed(0)
    keys = torch.unique(torch.randint(0, 1000, (300,), generator=generator))
    values = torch.randint(-5, 1005, (40, 7), generator=generator)
    assert torch.equal(contains(keys, values), torch.isin(values, keys))
    assert not contains(torch.zeros(0, dtype=torch.long), values).any()


def test_negatives_follow_popularity(ciao_split):
    dataset = ciao_split.dataset
    counts = np.bincount(dataset.items, minlength=dataset.num_items + 1)
    drawn = np.bincount(ciao_split.negatives.ravel(), minlength=dataset.num_items + 1)
    popular = counts >= 5
    rare = counts == 1
    # items seen five or more times are drawn far more often each than items seen once
    assert drawn[popular].mean() > 3 * drawn[rare].mean()


def test_few_items_left_pads_negatives(tmp_path):
    path = write(tmp_path / "log.csv", "u,i\nx,1\nx,2\nx,3\ny,1\ny,4\ny,5\n")
    dataset = prepare(load_raw(path), ColumnMapping("u", "i"))
    split = leave_last_two_out(dataset, seed=0, num_negatives=100)
    row = list(split.eval_users).index(0)
    assert sorted(v for v in split.negatives[row] if v) == sorted(
        dataset.item_ids.tolist().index(str(i)) for i in (4, 5)
    )


def test_loading_the_largest_set_takes_seconds():
    """Correctness only; the time is reported by benchmarks, not asserted here."""
    path = DATA / "amazon-sports"
    if not path.exists():
        pytest.skip("amazon-sports is not available")
    dataset = prepare(load_raw(path))
    assert dataset.stats["interactions"] == 296_337
    assert dataset.num_intents == 32


# ---- bad input


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_raw(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            ColumnMapping("customer", "item_id"),
            r"no column 'customer'.*user_id, item_id",
        ),
        (
            ColumnMapping("user_id", "item_id", intent="brand"),
            r"no column 'brand' for the intent.*--intent",
        ),
        (
            ColumnMapping("user_id", "item_id", name="title"),
            r"no column 'title' for the item name.*--name-column",
        ),
        (ColumnMapping("item_id", "item_id"), r"'item_id' is mapped as both user and"),
    ],
    ids=["user", "intent", "name", "user-is-item"],
)
def test_a_bad_mapping_names_the_column_and_the_flag(tmp_path, mapping, message):
    raw = load_raw(small_log(tmp_path))
    with pytest.raises(DataError, match=message):
        prepare(raw, mapping)


def test_an_item_table_that_names_items_otherwise_is_one_clear_error(tmp_path):
    write(tmp_path / "interactions.csv", "user_id,item_id\n" + "u1,1\nu1,2\nu1,3\n")
    write(tmp_path / "items.csv", "item_id,category\nm1,x\nm2,y\nm3,x\n")
    raw = load_raw(tmp_path)
    with pytest.raises(DataError, match=r"none of the 3 items.*'1', '2', '3'.*'m1'"):
        prepare(raw, ColumnMapping("user_id", "item_id", intent="category"))


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="empty"):
        load_raw(write(tmp_path / "log.csv", ""))


def test_header_only(tmp_path):
    raw = load_raw(write(tmp_path / "log.csv", "user_id,item_id\n"))
    with pytest.raises(DataError, match="no rows"):
        prepare(raw)


def test_non_numeric_time_names_the_row(tmp_path):
    path = write(tmp_path / "log.csv", "u,i,t\nx,1,1\nx,2,2\nx,3,soon\nx,4,4\n")
    with pytest.raises(DataError, match=r"row 4: the time column 't' holds 'soon'"):
        prepare(load_raw(path), ColumnMapping("u", "i", "t"))


def test_binary_file(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(DataError, match="binary"):
        load_raw(path)


def test_nobody_long_enough(tmp_path):
    path = write(tmp_path / "log.csv", "u,i\nx,1\nx,2\ny,3\n")
    with pytest.raises(DataError) as error:
        prepare(load_raw(path), ColumnMapping("u", "i"))
    assert str(error.value) == (
        f"{path}: no user in the user column 'u' has 3 or more interactions (the "
        "longest history has 2), so nothing can be validated or tested: "
        "leave-last-2-out holds out each user's last two. Use a log with longer "
        "histories per user."
    )


def test_nobody_long_enough_after_the_filters_says_which(tmp_path):
    raw = load_raw(write(tmp_path / "log.csv", "u,i\nx,1\nx,1\nx,2\ny,3\n"))
    filters = Filters(duplicates="first")
    with pytest.raises(DataError, match=r"after the filters.*--duplicates keep"):
        prepare(raw, ColumnMapping("u", "i"), filters)


def test_dataset_knows_where_its_intents_come_from(tmp_path):
    folder = small_log(tmp_path)
    dataset = prepare(load_raw(folder))
    assert dataset.source == str(folder / "interactions.csv")
    assert dataset.intent_origin() == (str(folder / "items.csv"), "category")
    mapping = ColumnMapping("user_id", "item_id", "timestamp")
    assert prepare(load_raw(folder), mapping).intent_origin() == (
        str(folder / "interactions.csv"),
        None,
    )


def test_filters_leave_nothing(tmp_path):
    raw = load_raw(small_log(tmp_path))
    with pytest.raises(DataError, match="no interactions are left"):
        prepare(raw, filters=Filters(min_item_freq=50))


def test_ambiguous_folder(tmp_path):
    write(tmp_path / "a.csv", "x\n1\n")
    write(tmp_path / "b.csv", "x\n1\n")
    with pytest.raises(DataError, match="cannot tell which file"):
        load_raw(tmp_path)


def test_reading_reports_its_progress_and_stops_when_told(tmp_path):
    """The workbench's bar follows the bytes read; raising from the callback (its
    cancel) ends the read at once, and the table is the same as read without it."""
    rows = "".join(f"u{i % 500},i{i % 3000},{i}\n" for i in range(200_000))
    path = write(tmp_path / "big" / "interactions.csv", "user_id,item_id,t\n" + rows)
    seen = []
    raw = load_raw(path, progress=lambda fraction, _text: seen.append(fraction))
    assert len(seen) > 5 and seen == sorted(seen) and seen[-1] == 1.0
    pd.testing.assert_frame_equal(raw.interactions, load_raw(path).interactions)

    class Stop(Exception):
        pass

    def stop_halfway(fraction, _text):
        if fraction > 0.5:
            raise Stop()

    with pytest.raises(Stop):
        load_raw(path, progress=stop_halfway)

    stages = []
    prepare(raw, progress=lambda fraction, stage: stages.append((fraction, stage)))
    assert [f for f, _ in stages] == sorted(f for f, _ in stages) and len(stages) >= 5
