"""The embedded broker: kombu's file transport, with whole messages only.

kombu's own transport writes a message in place (create the file, then write it); a worker
that lists the folder in between reads an empty file, fails to decode it and stops with
"Unrecoverable error". Here a message is written under a name the readers skip, then renamed
to its real name in the same folder: a rename is atomic, so a reader sees all of it or
nothing. `loyalty.celery` installs this transport for `filesystem://` broker URLs.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# A name that kombu's reader never takes: it wants `<stamp>.<queue>.msg` exactly.
UNFINISHED_SUFFIX = ".unfinished"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: written in full, then renamed into place."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        unfinished = final + UNFINISHED_SUFFIX
        try:
            with open(unfinished, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(unfinished, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make `filesystem://` URLs use this transport (in every process that imports Celery)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
