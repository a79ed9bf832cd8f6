"""The one guarded HTTP core of the toolkit, used by the cover fetcher and the mirror client.

- `addresses`: the address policy (which hosts and addresses data may send us to) and a free
  local port for our own servers; standard library only (aiohttp loads only for the resolver);
- `guarded`: the session (its connector checks the address of every connection before a byte
  of a request is sent), the redirect loop with the per-hop checks, byte caps and deadlines;
- `options`: the options object (`NetOptions`).
The publisher's client (official/drive.py) goes through gdown and requests instead: it talks to
one host the user chose, not to addresses found in data.
"""
