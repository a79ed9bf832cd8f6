"""Fixed vocabulary of the synthetic world: channels, tags, cover features and title words.

The platform has a main channel and 22 vertical channels (the paper crawled all 23); each of the
118 tags belongs to exactly one channel. `rid` is the platform's region id of a vertical (the
simulator's dynamic/region listing takes it); the main channel lists everything and has rid 0.
"""
from __future__ import annotations

MAIN_CHANNEL = "首页推荐"

# (name, rid, tags): the main channel first, then the 22 verticals.
_CHANNEL_TABLE = [
    (MAIN_CHANNEL, 0, ["热门", "新星计划", "每周必看", "入站必刷", "排行榜", "小视频", "原创", "日常分享"]),
    ("动画", 1, ["MAD·AMV", "MMD·3D", "手书", "配音", "手办模玩"]),
    ("番剧", 13, ["番剧资讯", "官方延伸", "完结动画", "连载动画", "新番推荐"]),
    ("国创", 167, ["国产动画", "国产原创", "布袋戏", "动态漫", "广播剧"]),
    ("音乐", 3, ["原创音乐", "音乐现场", "翻唱", "演奏", "VOCALOID"]),
    ("舞蹈", 129, ["宅舞", "街舞", "明星舞蹈", "国风舞蹈", "舞蹈教程"]),
    ("游戏", 4, ["单机游戏", "电子竞技", "手机游戏", "网络游戏", "音游"]),
    ("知识", 36, ["科学科普", "社科人文", "财经商业", "校园学习", "野生技术协会"]),
    ("科技", 188, ["数码", "软件应用", "计算机技术", "科工机械", "极客DIY"]),
    ("运动", 234, ["篮球", "足球", "健身", "竞技体育", "运动文化"]),
    ("汽车", 223, ["汽车知识", "购车攻略", "新能源车", "赛车", "摩托车"]),
    ("生活", 160, ["搞笑", "亲子", "出行", "三农", "手工"]),
    ("美食", 211, ["美食制作", "美食侦探", "美食测评", "田园美食", "美食记录"]),
    ("动物圈", 217, ["喵星人", "汪星人", "小宠异宠", "野生动物", "动物二创"]),
    ("鬼畜", 119, ["鬼畜调教", "音MAD", "人力VOCALOID", "鬼畜剧场", "教程演示"]),
    ("时尚", 155, ["美妆护肤", "仿妆cos", "穿搭", "时尚潮流", "风尚标"]),
    ("资讯", 202, ["热点", "环球", "社会", "综合资讯", "财经资讯"]),
    ("广告", 165, ["广告", "品牌推广", "产品评测", "开箱", "好物分享"]),
    ("娱乐", 5, ["娱乐杂谈", "CP安利", "颜值安利", "粉丝创作", "综艺"]),
    ("影视", 181, ["影视杂谈", "影视剪辑", "影视整活", "预告资讯", "小剧场"]),
    ("纪录片", 177, ["人文历史", "科学探索", "军事", "社会美食旅行", "自然"]),
    ("电影", 23, ["华语电影", "欧美电影", "日本电影", "其他国家电影", "电影解说"]),
    ("电视剧", 11, ["国产剧", "海外剧", "剧集解说", "经典剧集", "网络剧"]),
]

CHANNELS: list[str] = [name for name, _, _ in _CHANNEL_TABLE]
CHANNEL_RID: dict[str, int] = {name: rid for name, rid, _ in _CHANNEL_TABLE}
TAGS: list[str] = [tag for _, _, tags in _CHANNEL_TABLE for tag in tags]
TAG_CHANNEL: dict[str, str] = {tag: name for name, _, tags in _CHANNEL_TABLE for tag in tags}
# index of the first tag of each channel in TAGS, and how many tags it has
CHANNEL_TAG_START: list[int] = []
CHANNEL_TAG_COUNT: list[int] = []
_start = 0
for _name, _rid, _tags in _CHANNEL_TABLE:
    CHANNEL_TAG_START.append(_start)
    CHANNEL_TAG_COUNT.append(len(_tags))
    _start += len(_tags)

assert len(CHANNELS) == 23 and len(TAGS) == 118 and len(set(TAGS)) == 118

# Columns of World.visual, all in [0, 1]. The simulator renders covers from them.
VISUAL_FEATURES = (
    "hue",            # background hue (HSV), wraps around: 0 and 1 are both red
    "saturation",     # background saturation
    "brightness",     # background value (HSV)
    "shape_kind",     # k / (len(SHAPE_KINDS) - 1): which SHAPE_KINDS entry is drawn
    "shape_size",     # size of the shape relative to the shorter image side
    "texture_freq",   # frequency of the stripe texture over the background (0 = flat)
    "layout",         # k / (len(LAYOUTS) - 1): which LAYOUTS entry places the shapes
    "accent_hue",     # hue of the shape (HSV, full saturation); noise, carries no topic
)
SHAPE_KINDS = ("circle", "square", "triangle", "ring", "star")
LAYOUTS = ("centre", "off_centre_with_band", "grid")

# Words for titles (title = tag + adjective + noun + episode); descriptions reuse them.
TITLE_ADJECTIVES = ["超燃", "治愈", "硬核", "爆笑", "沉浸式", "高能", "神级", "宝藏", "冷门", "经典",
                    "全网最", "一分钟", "保姆级", "离谱", "绝美", "震撼"]
TITLE_NOUNS = ["合集", "教程", "挑战", "日常", "名场面", "混剪", "测评", "实录", "翻车现场", "盘点",
               "vlog", "解说", "现场", "开箱", "故事", "攻略"]
