"""Comment pages (/x/v2/reply, /x/v2/reply/reply) and the danmaku pool (/x/v1/dm/list.so) in the
platform's shapes. Which comments are roots and which nested replies: threads.py."""
from __future__ import annotations

import hashlib
import zlib
from xml.sax.saxutils import escape

from .payloads import FOLDER, PHRASES
from .threads import PREVIEW, Threads
from .world import SimWorld

MAX_REPLY_PS = 20
REPLY_CONFIG = {"showadmin": 1, "showentry": 1, "showfloor": 0, "showtopic": 1, "show_up_flag": True,
                "read_only": False, "show_del_log": False}
REPLY_CONTROL = {"input_disable": False, "root_input_text": "发一条友善的评论", "child_input_text": "",
                 "giveup_input_text": "不发没关系，请继续友善哦~", "bg_text": "看看下面~来发评论吧",
                 "web_selection": False, "answer_guide_text": "", "answer_guide_icon_url": "",
                 "answer_guide_ios_url": "", "answer_guide_android_url": "", "show_type": 1,
                 "show_text": "", "disable_jump_emote": False}


def placeholder_text(kind: str, ident: int) -> str:
    """Generated stand-in for user text, unique per comment/danmaku (searchable by privacy tests)."""
    return f"{PHRASES[ident % len(PHRASES)]} [{kind}{ident:x}]"


def _member(mid: int) -> dict:
    token = hashlib.blake2b(f"member|{mid}".encode(), digest_size=20).hexdigest()
    return {
        "mid": str(mid), "uname": f"用户{token[:8]}", "sex": "保密", "sign": "",
        "avatar": f"http://i0.hdslb.com/bfs/face/{token}.jpg", "rank": "10000", "DisplayRank": "0",
        "face_nft_new": 0, "is_senior_member": 0,
        "level_info": {"current_level": 1 + mid % 6, "current_min": 0, "current_exp": 0, "next_exp": 0},
        "pendant": {"pid": 0, "name": "", "image": "", "expire": 0, "image_enhance": "",
                    "image_enhance_frame": ""},
        "nameplate": {"nid": 0, "name": "", "image": "", "image_small": "", "level": "", "condition": ""},
        "official_verify": {"type": -1, "desc": ""},
        "vip": {"vipType": 0, "vipDueDate": 0, "dueRemark": "", "accessStatus": 0, "vipStatus": 0,
                "vipStatusWarn": "", "themeType": 0,
                "label": {"path": "", "text": "", "label_theme": "", "text_color": "", "bg_style": 0,
                          "bg_color": "", "border_color": ""},
                "avatar_subscript": 0, "avatar_subscript_url": "", "nickname_color": ""},
        "fans_detail": None, "following": 0, "is_followed": 0,
        "user_sailing": {"pendant": None, "cardbg": None, "cardbg_with_focus": None},
        "is_contractor": False, "contract_desc": "",
    }


def _reply(aid: int, rpid: int, mid: int, ctime: int, root: int = 0, parent: int = 0, dialog: int = 0,
           rcount: int = 0) -> dict:
    """One comment object; a root has root = parent = 0, a nested reply its root and parent rpids."""
    control = {"time_desc": ""}
    if rcount:
        control.update(sub_reply_entry_text=f"共{rcount}条回复",
                       sub_reply_title_text=f"相关回复共{rcount}条")
    return {
        "rpid": rpid, "oid": aid, "type": 1, "mid": mid, "root": root, "parent": parent, "dialog": dialog,
        "count": rcount, "rcount": rcount, "state": 0, "fansgrade": 0, "attr": 0, "ctime": ctime,
        "rpid_str": str(rpid), "root_str": str(root), "parent_str": str(parent), "like": rpid % 97,
        "action": 0, "member": _member(mid),
        "content": {"message": placeholder_text("c", rpid), "plat": 0, "device": "", "members": [],
                    "emote": {}, "jump_url": {}, "max_line": 6},
        "replies": [] if root == 0 else None, "assist": 0, "folder": dict(FOLDER),
        "up_action": {"like": False, "reply": False}, "show_follow": False, "invisible": False,
        "reply_control": control,
    }


def _comment(world: SimWorld, aid: int, row: int, **nesting) -> dict:
    c = world.comments
    return _reply(aid, int(c.ident[row]), int(c.mid[row]), int(c.timestamp[row]), **nesting)


def _nested(world: SimWorld, aid: int, threads: Threads, k: int, first: int, stop: int) -> list[dict]:
    """Replies first..stop-1 (thread order, oldest first) of root k."""
    base, root = int(threads.start[k]), int(threads.root_rpid[k])
    return [_comment(world, aid, int(threads.replies[j]), root=root, parent=int(threads.parent[j]),
                     dialog=int(threads.dialog[j]))
            for j in range(base + first, min(base + stop, int(threads.start[k + 1])))]


def _root(world: SimWorld, aid: int, threads: Threads, k: int) -> dict:
    """Root k with its rcount and the preview of its first replies (as /x/v2/reply lists it)."""
    reply = _comment(world, aid, int(threads.roots[k]), rcount=threads.rcount(k))
    reply["replies"] = _nested(world, aid, threads, k, 0, PREVIEW)
    return reply


def reply_page(world: SimWorld, i: int, pn: int, ps: int, sort: int) -> dict:
    """data of /x/v2/reply: root comments, newest first (sort=0) or by likes (1, 2), each with its
    rcount and a preview of its first replies; page.count counts roots, page.acount all comments."""
    threads = world.threads(i)
    order = threads.by_likes if sort in (1, 2) else range(len(threads.roots))  # a slice, not a copy
    aid = int(world.cols["aid"][i])
    replies = [_root(world, aid, threads, int(k)) for k in order[(pn - 1) * ps: pn * ps]]
    return {
        "page": {"num": pn, "size": ps, "count": len(threads.roots), "acount": threads.total},
        "config": dict(REPLY_CONFIG), "replies": replies, "hots": [],
        "upper": {"mid": world.owner_mid(i), "top": None, "vote": None}, "top": None, "notice": None,
        "vote": 0, "blacklist": 0, "assist": 0, "mode": 3, "support_mode": [1, 2, 3],
        "folder": dict(FOLDER), "lottery_card": None, "show_bvid": False, "control": dict(REPLY_CONTROL),
    }


def reply_reply_page(world: SimWorld, i: int, k: int, pn: int, ps: int) -> dict:
    """data of /x/v2/reply/reply: the replies of root k of video i, oldest first, paged."""
    threads = world.threads(i)
    aid = int(world.cols["aid"][i])
    root = _comment(world, aid, int(threads.roots[k]), rcount=threads.rcount(k))
    root["replies"] = None  # the thread itself is the page
    return {
        "config": dict(REPLY_CONFIG), "control": dict(REPLY_CONTROL),
        "page": {"count": threads.rcount(k), "num": pn, "size": ps},
        "replies": _nested(world, aid, threads, k, (pn - 1) * ps, pn * ps), "root": root,
        "show_bvid": True, "show_text": "", "show_type": 1, "upper": {"mid": world.owner_mid(i)},
    }


def dm_xml(world: SimWorld, i: int) -> bytes:
    """The list.so XML of video i (uncompressed), current pool only; p has 8 or 9 (weight) fields."""
    pool, maxlimit = world.dm_pool(i)
    d = world.danmaku
    duration = max(1, int(world.cols["duration_s"][i]))
    with_weight = int(world.cid[i]) % 2 == 1  # newer responses carry a 9th field (weight)
    lines = ['<?xml version="1.0" encoding="UTF-8"?><i>', "<chatserver>chat.bilibili.com</chatserver>",
             f"<chatid>{int(world.cid[i])}</chatid>", "<mission>0</mission>",
             f"<maxlimit>{maxlimit}</maxlimit>", "<state>0</state>", "<real_name>0</real_name>",
             "<source>k-v</source>"]
    for r in range(pool.start, pool.stop):
        dmid = int(d.ident[r])
        progress = (dmid % (duration * 1000)) / 1000.0
        fields = [f"{progress:.5f}", "1", "25", "16777215", str(int(d.timestamp[r])), "0",
                  str(d.mid_hash[r]), str(dmid)]
        if with_weight:
            fields.append(str(1 + dmid % 10))
        lines.append(f'<d p="{",".join(fields)}">{escape(placeholder_text("d", dmid))}</d>')
    lines.append("</i>")
    return "".join(lines).encode("utf-8")


def raw_deflate(body: bytes) -> bytes:
    """Raw deflate (no zlib header), as the platform sends list.so."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(body) + packer.flush()
