"""Response bodies in the platform's shapes (field names, nesting and types of the real responses).

Only the values the crawler reads come from the world; the rest is fixed, plausible filler so that a
parser meets the same structure as on the real site. Comment and danmaku texts are generated
placeholders (the platform sends text; PixelRec never keeps it).
"""
from __future__ import annotations

import hashlib

from .world import SimWorld

PHRASES = ("好看", "来了来了", "哈哈哈哈", "支持一下", "封面好评", "这个配色绝了", "mark",
           "第一次刷到", "前排", "太真实了")
FOLDER = {"has_folded": False, "is_folded": False, "rule": "https://www.bilibili.com/blackboard/foldingreply.html"}


def envelope(data, code: int = 0, message: str = "0") -> dict:
    return {"code": code, "message": message, "ttl": 1, "data": data}


ERRORS = {
    -400: {"code": -400, "message": "请求错误", "ttl": 1},
    -404: {"code": -404, "message": "啥都木有", "ttl": 1, "data": None},
    62002: {"code": 62002, "message": "稿件不可见", "ttl": 1},
    12002: {"code": 12002, "message": "评论区已关闭", "ttl": 1},
    12022: {"code": 12022, "message": "已经被删除了", "ttl": 1, "data": None},  # no such root comment
    -412: {"code": -412, "message": "请求被拦截", "ttl": 1, "data": None},
}


def _voucher(seed_text: str) -> str:
    token = hashlib.blake2b(seed_text.encode(), digest_size=16).hexdigest()
    return f"voucher_{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:32]}"


def challenge(seed_text: str) -> dict:
    """The -352 risk-control answer."""
    return {"code": -352, "message": "风控校验失败", "ttl": 1, "data": {"v_voucher": _voucher(seed_text)}}


def voucher_only(seed_text: str) -> dict:
    """The other challenge form: code 0, but data holds only a v_voucher (no payload)."""
    return {"code": 0, "message": "0", "ttl": 1, "data": {"v_voucher": _voucher(seed_text)}}


def _hex40(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


def cover_link(world: SimWorld, i: int, base: str) -> str:
    return f"{base}/bfs/archive/{world.cols['cover_url'][i]}.jpg"


def _owner(world: SimWorld, i: int, base: str) -> dict:
    mid = world.owner_mid(i)
    return {"mid": mid, "name": f"up_{_hex40('owner', mid)[:8]}",
            "face": f"{base}/bfs/face/{_hex40('face', mid)}.jpg"}


def _rights(extended: bool) -> dict:
    rights = {"bp": 0, "elec": 0, "download": 1, "movie": 0, "pay": 0, "hd5": 1, "no_reprint": 1,
              "autoplay": 1, "ugc_pay": 0, "is_cooperation": 0, "ugc_pay_preview": 0, "no_background": 0}
    if extended:
        rights.update({"clean_mode": 0, "is_stein_gate": 0, "is_360": 0, "no_share": 0,
                       "arc_pay": 0, "free_watch": 0})
    return rights


def stat(world: SimWorld, i: int, extended: bool = False) -> dict:
    c = world.counts(i)
    out = {"aid": int(world.cols["aid"][i]), "view": c["view_number"], "danmaku": c["barrage_number"],
           "reply": c["comment_number"], "favorite": c["favorite_number"], "coin": c["coin_number"],
           "share": c["share_number"], "now_rank": 0, "his_rank": 0, "like": c["thumbup_number"],
           "dislike": 0}
    if extended:
        out.update({"evaluation": "", "vt": 0})
    return out


def archive_stat(world: SimWorld, i: int) -> dict:
    s = stat(world, i)
    return {"aid": s["aid"], "bvid": world.cols["platform_video_id"][i], "view": s["view"],
            "danmaku": s["danmaku"], "reply": s["reply"], "favorite": s["favorite"], "coin": s["coin"],
            "share": s["share"], "like": s["like"], "now_rank": 0, "his_rank": 0, "no_reprint": 1,
            "copyright": 1, "argue_msg": "", "evaluation": ""}


def _dimension() -> dict:
    return {"width": 1920, "height": 1080, "rotate": 0}


def archive(world: SimWorld, i: int, base: str) -> dict:
    """The archive object of dynamic/region listings and archive/related."""
    c = world.cols
    release = int(c["release_time"][i])
    return {"aid": int(c["aid"][i]), "videos": 1, "tid": world.rid(i), "tname": c["channel"][i],
            "copyright": 1, "pic": cover_link(world, i, base), "title": c["title"][i],
            "pubdate": release, "ctime": release - 600, "desc": c["description"][i], "state": 0,
            "attribute": 16512, "duration": int(c["duration_s"][i]), "rights": _rights(False),
            "owner": _owner(world, i, base), "stat": stat(world, i), "dynamic": "",
            "cid": int(world.cid[i]), "dimension": _dimension(), "bvid": c["platform_video_id"][i]}


def view(world: SimWorld, i: int, base: str) -> dict:
    """data of /x/web-interface/view."""
    a = archive(world, i, base)
    rid = a["tid"]
    page = {"cid": a["cid"], "page": 1, "from": "vupload", "part": a["title"], "duration": a["duration"],
            "vid": "", "weblink": "", "dimension": _dimension(), "ctime": a["ctime"]}
    return {
        "bvid": a["bvid"], "aid": a["aid"], "videos": 1, "tid": rid, "tid_v2": 2000 + rid,
        "tname": a["tname"], "tname_v2": a["tname"], "copyright": 1, "pic": a["pic"],
        "title": a["title"], "pubdate": a["pubdate"], "ctime": a["ctime"], "desc": a["desc"],
        "desc_v2": [{"raw_text": a["desc"], "type": 1, "biz_id": 0}], "state": 0,
        "duration": a["duration"], "rights": _rights(True), "owner": a["owner"],
        "stat": stat(world, i, extended=True),
        "argue_info": {"argue_msg": "", "argue_type": 0, "argue_link": ""}, "dynamic": "",
        "cid": a["cid"], "dimension": _dimension(), "premiere": None, "teenage_mode": 0,
        "is_chargeable_season": False, "is_story": False, "is_upower_exclusive": False,
        "is_upower_play": False, "is_upower_preview": False, "enable_vt": 0, "vt_display": "",
        "is_upower_exclusive_with_qa": False, "no_cache": False, "pages": [page],
        "subtitle": {"allow_submit": False, "list": []}, "is_season_display": False,
        "user_garb": {"url_image_ani_cut": ""}, "honor_reply": {}, "like_icon": "",
        "need_jump_bv": False, "disable_show_up_info": False, "is_story_play": 1,
        "is_view_self": False,
    }


def tags(world: SimWorld, i: int) -> list[dict]:
    """data of view/detail/tag: one entry per comma-separated part of the video's tag."""
    parts = [t for t in str(world.cols["tag"][i] or "").split(",") if t]
    return [{"tag_id": int(_hex40("tag", t)[:7], 16), "tag_name": t, "music_id": "",
             "tag_type": "old_channel", "jump_url": ""} for t in parts]
