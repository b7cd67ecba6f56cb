"""The embedded broker writes whole messages only: a worker never reads a half-written one
(kombu's own file transport let a worker read an empty file and stop)."""

import json

import pytest
from kombu import Connection
from kombu.transport.virtual import Empty

from loyalty.broker import UNFINISHED_SUFFIX, Transport


@pytest.fixture
def channel(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    with Connection("filesystem://", transport=Transport, transport_options=options) as conn:
        yield conn.default_channel, folder


def test_a_message_lands_whole_under_its_final_name(channel):
    chan, folder = channel

    chan._put("celery", {"body": "x" * 100_000})

    names = [path.name for path in folder.iterdir()]
    assert len(names) == 1 and names[0].endswith(".celery.msg")
    assert json.loads((folder / names[0]).read_text())["body"] == "x" * 100_000


def test_while_a_message_is_written_no_reader_can_take_it(channel, monkeypatch):
    """The moment the payload is encoded (its file already open): no file in the folder has a
    name a reader takes. kombu's own transport had the final, still empty file there."""
    from loyalty import broker

    chan, folder = channel
    seen_while_writing = []

    def encode_and_look(payload):
        seen_while_writing.extend(path.name for path in folder.iterdir())
        return json.dumps(payload)

    monkeypatch.setattr(broker, "dumps", encode_and_look)
    chan._put("celery", {"body": "x"})

    assert seen_while_writing  # the unfinished file was there
    assert [name for name in seen_while_writing if name.partition(".")[2] == "celery.msg"] == []


def test_a_reader_skips_a_message_still_being_written(channel):
    chan, folder = channel
    (folder / f"1_half.celery.msg{UNFINISHED_SUFFIX}").write_bytes(b"")

    with pytest.raises(Empty):
        chan._get("celery")

    chan._put("celery", {"body": "whole"})
    assert chan._get("celery") == {"body": "whole"}


def test_the_app_uses_it_for_file_broker_urls():
    from loyalty.celery import app

    with app.connection_for_write("filesystem://") as connection:
        assert isinstance(connection.transport, Transport)
