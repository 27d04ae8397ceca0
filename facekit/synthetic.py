"""A built-in synthetic face set in CelebA's official layout, the default data when no CelebA is given.

Each image is a procedurally drawn cartoon face (178x218 JPEG) framed like CelebA's aligned images: eyes at
y≈112, x≈70 and x≈108, mouth at y≈151, chin at y≈182, so the usual centred crops work. Identities keep their
face shape, skin, hair, eyes, nose and beard; each image of an identity varies expression, glasses, hat,
clothes, background, pose and lighting. The attributes written to `list_attr_celeba.txt` are true of the
drawings; attributes the drawing does not control are written as -1 for every image.
"""

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facekit.files import umask

ATTRIBUTES = tuple("""
    5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair
    Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male
    Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks
    Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace
    Wearing_Necktie Young""".split())
WIDTH, HEIGHT = 178, 218
JPEG_QUALITY = 95
MARKER = "SYNTHETIC.txt"

_SCALE = 2  # drawn at twice the size, then downsampled: cheap antialiasing
_HAIR = {"black": (30, 26, 26), "brown": (105, 66, 38), "blond": (226, 196, 128), "gray": (178, 178, 174),
         "red": (160, 68, 36)}
_SKIN = [(250, 228, 214), (238, 198, 166), (222, 176, 136), (196, 146, 104), (160, 112, 76), (112, 76, 52)]
_DARK = [(20, 20, 24), (60, 36, 24), (24, 30, 70), (90, 20, 30)]
_TRAITS = {"Arched_Eyebrows": 0.35, "Big_Lips": 0.25, "Big_Nose": 0.25, "Bushy_Eyebrows": 0.25, "Narrow_Eyes": 0.2,
           "Oval_Face": 0.3, "Pointy_Nose": 0.25, "Rosy_Cheeks": 0.15}  # chance for anyone
_FEMALE_TRAITS = {"Heavy_Makeup": 0.4, "Wearing_Earrings": 0.35, "Wearing_Lipstick": 0.3}  # makeup adds lipstick
_PALETTE = [(200, 40, 40), (40, 90, 180), (40, 140, 70), (230, 200, 60), (120, 60, 150), (240, 240, 235),
            (40, 40, 45), (230, 130, 40), (90, 180, 200), (150, 100, 70)]


@dataclasses.dataclass(frozen=True)
class Person:
    """What stays the same across one identity's images (colours are RGB 0-255)."""

    male: bool
    old: bool  # wrinkles and eye bags, mostly gray hair
    skin: tuple
    face_half_width: float
    face_half_height: float
    hair: str  # a key of _HAIR
    hair_style: str  # short, long, bangs, receding, bald
    wavy: bool
    eye_colour: tuple
    beard: str  # none, stubble, mustache, goatee, full
    traits: frozenset  # CelebA names drawn as such: Big_Nose, Narrow_Eyes, Wearing_Lipstick, ... (_TRAITS)
    glasses_habit: float  # chance of glasses in a given image


@dataclasses.dataclass(frozen=True)
class Portrait:
    """One image: a person plus expression, accessories, clothes, background, pose and lighting."""

    person: Person
    smiling: bool
    mouth_open: bool
    glasses: str  # none, clear, sun
    frame_colour: tuple  # glasses and necktie
    hat: str  # none, beanie, cap, fedora
    hat_colour: tuple
    neckwear: str  # none, necklace, necktie
    shirt: tuple
    background: tuple
    pose: tuple  # (yaw: pixels the features shift sideways, roll: degrees, dx, dy: pixels)
    light: tuple  # (brightness, gradient strength, gradient angle, red tint, blue tint)
    blurry: bool
    noise_offset: tuple  # (row, column) into the fixed noise field


def write_synthetic_celeba(out_dir, count: int, seed: int = 0) -> Path:
    """Write `count` synthetic faces in CelebA's official layout to `out_dir` and return it.

    Writes `img_align_celeba/000001.jpg...`, `list_attr_celeba.txt`, `list_eval_partition.txt` (train, val,
    test ≈ 80/10/10 by identity, contiguous in file order like CelebA's) and `identity_CelebA.txt`, plus
    `SYNTHETIC.txt` naming count and seed. Same (count, seed) gives byte-identical files. The set is written to
    a temporary sibling folder and renamed into place. If `out_dir` already holds the set for this count and
    seed it is returned unchanged; if it holds anything else, FileExistsError.
    """
    out_dir = Path(out_dir)
    if count < 1:
        raise ValueError(f"count={count}: expected at least 1 image")
    marker = f"facekit synthetic CelebA: count={count} seed={seed}\n"
    if out_dir.exists():
        return _existing_set(out_dir, marker, count)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        os.chmod(temp, 0o777 & ~umask())  # mkdtemp makes it private; the set should not be
        _write_set(temp, count, seed)
        (temp / MARKER).write_text(marker)
        os.rename(temp, out_dir)
    except BaseException as error:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(error, OSError) and out_dir.exists():  # another process finished the same set first
            return _existing_set(out_dir, marker, count)
        raise
    return out_dir


def draw_face(portrait: Portrait) -> Image.Image:
    """Draw one portrait: an RGB 178x218 Pillow image."""
    image = Image.new("RGB", (WIDTH * _SCALE, HEIGHT * _SCALE), portrait.background)
    _draw(_Pen(ImageDraw.Draw(image)), portrait)
    _, roll, dx, dy = portrait.pose
    image = image.rotate(roll, Image.NEAREST, center=(89 * _SCALE, 122 * _SCALE),
                         translate=(dx * _SCALE, dy * _SCALE), fillcolor=portrait.background)
    image = image.reduce(_SCALE)
    if portrait.blurry:
        image = image.filter(ImageFilter.GaussianBlur(1.8))
    return Image.fromarray(_light(np.asarray(image), portrait))


def _attributes(portrait: Portrait) -> dict:
    """The CelebA attributes true of this drawing: name -> bool for all 40 names (uncontrolled ones False)."""
    p, hat = portrait.person, portrait.hat != "none"
    has_hair, long_hair = p.hair_style != "bald", p.hair_style in ("long", "bangs")
    holds = {
        "5_o_Clock_Shadow": p.beard == "stubble", "Bags_Under_Eyes": p.old, "Bald": not has_hair and not hat,
        "Bangs": p.hair_style == "bangs", "Blurry": portrait.blurry, "Eyeglasses": portrait.glasses != "none",
        "Goatee": p.beard == "goatee", "Male": p.male, "Mouth_Slightly_Open": portrait.mouth_open,
        "Mustache": p.beard in ("mustache", "full"), "No_Beard": p.beard in ("none", "stubble"),
        "Receding_Hairline": p.hair_style == "receding" and not hat, "Sideburns": p.beard == "full",
        "Smiling": portrait.smiling, "Straight_Hair": long_hair and not p.wavy, "Wavy_Hair": long_hair and p.wavy,
        "Wearing_Hat": hat, "Wearing_Necklace": portrait.neckwear == "necklace",
        "Wearing_Necktie": portrait.neckwear == "necktie", "Young": not p.old,
        f"{p.hair.capitalize()}_Hair": has_hair,  # red hair has no CelebA attribute: Red_Hair is never written
    }
    true = p.traits | {name for name, holding in holds.items() if holding}
    return {name: name in true for name in ATTRIBUTES}


def _sample_set(count: int, seed: int = 0):
    """The plan behind a set: (portraits, identities, partitions), one entry per image in file order."""
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < count:
        sizes.append(int(rng.integers(2, 9)))
    sizes[-1] -= sum(sizes) - count
    people = [_sample_person(rng) for _ in sizes]
    partitions_of_identity, start = {}, 0
    for identity in rng.permutation(len(sizes)):
        partitions_of_identity[identity] = 0 if start < 0.8 * count else 1 if start < 0.9 * count else 2
        start += sizes[identity]
    order = [(partitions_of_identity[i], i) for i, size in enumerate(sizes) for _ in range(size)]
    order = [order[k] for k in rng.permutation(count)]
    order.sort(key=lambda pair: pair[0])  # stable: shuffled within each partition
    portraits = [_sample_portrait(rng, people[identity]) for _, identity in order]
    return portraits, [identity + 1 for _, identity in order], [partition for partition, _ in order]


def _existing_set(out_dir, marker, count):
    marker_path = out_dir / MARKER
    found = marker_path.read_text() if marker_path.is_file() else None
    images = out_dir / "img_align_celeba"
    if found != marker or not images.is_dir() or len(os.listdir(images)) != count:
        raise FileExistsError(f"{out_dir}: exists but is not the complete synthetic set "
                              f"({marker.strip()}); remove it or choose another folder")
    return out_dir


def _write_set(folder, count, seed):
    portraits, identities, partitions = _sample_set(count, seed)
    (folder / "img_align_celeba").mkdir()
    names = [f"{number:06d}.jpg" for number in range(1, count + 1)]
    rows = []
    for name, portrait in zip(names, portraits):
        draw_face(portrait).save(folder / "img_align_celeba" / name, "JPEG", quality=JPEG_QUALITY)
        values = _attributes(portrait).values()
        rows.append(name + " " + " ".join(f"{1 if value else -1:2d}" for value in values))
    (folder / "list_attr_celeba.txt").write_text(f"{count}\n{' '.join(ATTRIBUTES)} \n" + "\n".join(rows) + "\n")
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partitions)))
    (folder / "identity_CelebA.txt").write_text("".join(f"{n} {i}\n" for n, i in zip(names, identities)))


def _sample_person(rng) -> Person:
    chance = rng.random
    male, old, skin_index = bool(chance() < 0.45), bool(chance() < 0.25), int(rng.integers(len(_SKIN)))
    styles = ["short", "bald", "receding", "long"] if male else ["long", "bangs", "short"]
    style_p = [0.7, 0.1, 0.15, 0.05] if male else [0.55, 0.3, 0.15]
    hair_p = [0.15, 0.1, 0.1, 0.6, 0.05] if old else [0.35, 0.35, 0.22, 0.0, 0.08]  # black brown blond gray red
    beard_p = [0.5, 0.15, 0.1, 0.1, 0.15] if male else [1, 0, 0, 0, 0]
    eye_colour = [(70, 45, 25), (50, 90, 150), (60, 110, 60)][int(rng.integers(3))]
    chances = _TRAITS if male else _TRAITS | _FEMALE_TRAITS
    traits = {name for name, probability in chances.items() if chance() < probability} | ({"Pale_Skin"} if skin_index == 0 else set())
    if "Heavy_Makeup" in traits:
        traits.add("Wearing_Lipstick")
    oval = "Oval_Face" in traits
    return Person(
        male=male, old=old, skin=_jitter(rng, _SKIN[skin_index], 8),
        face_half_width=float(rng.uniform(39, 42) if oval else rng.uniform(43, 48)),
        face_half_height=float(rng.uniform(62, 65) if oval else rng.uniform(57, 61)),
        hair=str(rng.choice(list(_HAIR), p=hair_p)), hair_style=str(rng.choice(styles, p=style_p)),
        wavy=bool(chance() < 0.4), eye_colour=_jitter(rng, eye_colour, 15),
        beard=str(rng.choice(["none", "stubble", "mustache", "goatee", "full"], p=beard_p)),
        traits=frozenset(traits), glasses_habit=float(rng.choice([0.0, 0.0, 0.0, 0.4, 0.9])),
    )


def _sample_portrait(rng, person: Person) -> Portrait:
    chance = rng.random
    smiling = bool(chance() < 0.5)
    glasses = "none" if chance() >= person.glasses_habit else "sun" if chance() < 0.2 else "clear"
    background = _jitter(rng, _PALETTE[int(rng.integers(len(_PALETTE)))], 40)
    distinct = [c for c in _PALETTE if sum(abs(a - b) for a, b in zip(c, background)) > 200]
    neckwear = ("necktie" if person.male else "necklace") if chance() < 0.3 else "none"
    return Portrait(
        person=person, smiling=smiling, mouth_open=bool(chance() < (0.6 if smiling else 0.2)), glasses=glasses,
        frame_colour=_DARK[int(rng.integers(len(_DARK)))],
        hat=str(rng.choice(["beanie", "cap", "fedora"])) if chance() < 0.15 else "none",
        hat_colour=distinct[int(rng.integers(len(distinct)))], neckwear=neckwear,
        shirt=_jitter(rng, _PALETTE[int(rng.integers(len(_PALETTE)))], 20), background=background,
        pose=tuple(float(rng.uniform(-limit, limit)) for limit in (4, 5, 2, 2)),
        light=(float(rng.uniform(0.85, 1.12)), float(rng.uniform(0, 0.2)), float(rng.uniform(0, 2 * np.pi)),
               float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))),
        blurry=bool(chance() < 0.05), noise_offset=(int(rng.integers(64)), int(rng.integers(64))),
    )


def _jitter(rng, colour, amount):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _mix(a, b, t):
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b))


class _Pen:
    """ImageDraw taking 178x218 frame coordinates (ellipses by centre and radii) and drawing at _SCALE."""

    def __init__(self, draw):
        self.draw = draw

    def ellipse(self, cx, cy, rx, ry, fill=None, outline=None, width=1):
        self.draw.ellipse(_box(cx, cy, rx, ry), fill=fill, outline=outline, width=round(width * _SCALE))

    def chord(self, cx, cy, rx, ry, start, end, fill):
        self.draw.chord(_box(cx, cy, rx, ry), start, end, fill=fill)

    def arc(self, cx, cy, rx, ry, start, end, fill, width):
        self.draw.arc(_box(cx, cy, rx, ry), start, end, fill=fill, width=round(width * _SCALE))

    def polygon(self, points, fill):
        self.draw.polygon([(x * _SCALE, y * _SCALE) for x, y in points], fill=fill)

    def line(self, points, fill, width):
        points = [(x * _SCALE, y * _SCALE) for x, y in points]
        self.draw.line(points, fill=fill, width=round(width * _SCALE), joint="curve")


def _box(cx, cy, rx, ry):
    return [(cx - rx) * _SCALE, (cy - ry) * _SCALE, (cx + rx) * _SCALE, (cy + ry) * _SCALE]


def _draw(pen: _Pen, portrait: Portrait):
    p = portrait.person
    cx, cy, hw, hh = 89.0, 122.0, p.face_half_width, p.face_half_height
    fx = cx + portrait.pose[0]  # features turn with the head
    hair = _HAIR[p.hair]
    shade = _mix(p.skin, (60, 30, 20), 0.3)
    # clothes, long hair behind, neck, ears, face
    pen.ellipse(cx, 262, 92, 66, fill=portrait.shirt)
    if p.hair_style in ("long", "bangs"):
        pen.ellipse(cx, 110, hw + 14, 80, fill=hair)
        pen.polygon([(cx - hw - 14, 110), (cx + hw + 14, 110), (cx + hw + 18, 212), (cx - hw - 18, 212)], hair)
        if p.wavy:
            for y in range(110, 212, 14):
                for side in (-1, 1):
                    pen.ellipse(cx + side * (hw + 16), y, 7, 8, fill=hair)
    pen.polygon([(cx - 18, 150), (cx + 18, 150), (cx + 22, 200), (cx, 212), (cx - 22, 200)], p.skin)
    if portrait.neckwear == "necktie":
        pen.polygon([(cx - 14, 197), (cx, 206), (cx + 14, 197), (cx + 16, 218), (cx - 16, 218)], (245, 245, 245))
        pen.polygon([(cx - 4, 203), (cx + 4, 203), (cx + 6, 218), (cx - 6, 218)], portrait.frame_colour)
    if portrait.neckwear == "necklace":
        pen.arc(cx, 176, 24, 26, 30, 150, fill=(230, 200, 90), width=1.5)
    for side in (-1, 1):
        pen.ellipse(cx + side * (hw + 1), 124, 6, 12, fill=p.skin)
        if "Wearing_Earrings" in p.traits:
            pen.ellipse(cx + side * (hw + 1), 139, 2.2, 2.2, fill=(235, 200, 70))
    if p.hair_style != "bald":
        pen.ellipse(cx, 80, hw + 5, 48 if p.hair_style == "short" else 52, fill=hair)
    pen.ellipse(cx, cy, hw, hh, fill=p.skin)
    _draw_hairline(pen, p, cx, hw, hair)
    beard = hair if p.hair_style != "bald" else (60, 45, 35)
    if p.beard in ("stubble", "full"):
        pen.chord(cx, cy, hw, hh, 15, 165, fill=_mix(p.skin, beard, 0.3 if p.beard == "stubble" else 0.9))
    if p.beard == "full":
        pen.ellipse(fx, 147, 12, 7, fill=p.skin)
        for side in (-1, 1):
            pen.polygon([(cx + side * hw, 112), (cx + side * (hw - 7), 112), (cx + side * (hw - 8), 140),
                         (cx + side * (hw - 1), 140)], beard)
    if p.beard == "goatee":
        pen.ellipse(fx, 167, 8, 11, fill=beard)
    if p.old:
        for y in (79, 85):
            pen.arc(fx, y + 14, 16, 14, 235, 305, fill=shade, width=1)
    if p.traits & {"Rosy_Cheeks", "Heavy_Makeup"}:
        for side in (-1, 1):
            pen.ellipse(fx + side * 25, 136, 8, 6, fill=_mix(p.skin, (230, 90, 110), 0.3))
    _draw_eyes(pen, portrait, fx, hair)
    _draw_nose(pen, p, fx, shade)
    _draw_mouth(pen, portrait, fx, beard)
    _draw_glasses(pen, portrait, cx, fx, hw)
    _draw_hat(pen, portrait, cx, hw)


def _draw_hairline(pen, p, cx, hw, hair):
    if p.hair_style == "bangs":
        pen.polygon([(cx - hw - 4, 104), (cx - hw + 2, 70), (cx, 58), (cx + hw - 2, 70), (cx + hw + 4, 104),
                     (cx + hw - 6, 96)] + [(cx + x, 97 - 3 * (i % 2)) for i, x in enumerate(range(28, -32, -8))]
                    + [(cx - hw + 6, 96)], hair)
    elif p.hair_style == "receding":
        pen.polygon([(cx - hw - 3, 104), (cx - hw + 1, 84), (cx - 18, 62), (cx, 71), (cx + 18, 62),
                     (cx + hw - 1, 84), (cx + hw + 3, 104), (cx + hw + 5, 60), (cx - hw - 5, 60)], hair)
    elif p.hair_style != "bald":
        part = -12 if p.wavy else 10
        pen.polygon([(cx - hw - 3, 106), (cx - hw + 3, 84), (cx + part, 68), (cx + hw - 3, 80),
                     (cx + hw + 3, 106), (cx + hw + 5, 60), (cx - hw - 5, 60)], hair)


def _draw_eyes(pen, portrait, fx, hair):
    p = portrait.person
    eye_ry = 2.8 if "Narrow_Eyes" in p.traits else 4.6
    brow = _mix(hair, (40, 25, 15), 0.4) if p.hair_style != "bald" else (70, 50, 40)
    for side in (-1, 1):
        ex, ey = fx + side * 19, 112.0
        if "Heavy_Makeup" in p.traits:
            pen.ellipse(ex, ey - 2.5, 9.5, eye_ry + 3.5, fill=_mix(p.skin, (110, 60, 130), 0.45))
        if p.old:
            pen.arc(ex, ey + 2, 7, 5, 20, 160, fill=_mix(p.skin, (60, 30, 20), 0.3), width=1)
        pen.ellipse(ex, ey, 8, eye_ry, fill=(250, 250, 248))
        pen.ellipse(ex + portrait.pose[0] * 0.4, ey, 3.6, min(3.6, eye_ry), fill=p.eye_colour)
        pen.ellipse(ex + portrait.pose[0] * 0.4, ey, 1.5, min(1.5, eye_ry), fill=(10, 10, 10))
        pen.arc(ex, ey, 8, eye_ry, 190, 350, fill=(30, 20, 20), width=1.2)
        inner, outer = ex - side * 9, ex + side * 10
        peak = (ex + side * 1, 97.5) if "Arched_Eyebrows" in p.traits else (ex, 100)
        pen.line([(inner, 102), peak, (outer, 102 if "Arched_Eyebrows" in p.traits else 101)], fill=brow,
                 width=4 if "Bushy_Eyebrows" in p.traits else 2)


def _draw_nose(pen, p, fx, shade):
    scale = 1.35 if "Big_Nose" in p.traits else 1.0
    if "Pointy_Nose" in p.traits:
        pen.line([(fx + 1, 116), (fx + 6 * scale, 136), (fx - 1, 138)], fill=shade, width=1.4)
    else:
        pen.line([(fx + 2, 118), (fx + 4 * scale, 131)], fill=shade, width=1.2)
        pen.arc(fx, 133, 6 * scale, 4 * scale, 10, 170, fill=shade, width=1.4)
        for side in (-1, 1):
            pen.ellipse(fx + side * 3 * scale, 135, 1.3, 0.9, fill=_mix(shade, (0, 0, 0), 0.3))


def _draw_mouth(pen, portrait, fx, beard):
    p, y = portrait.person, 151.0
    lips = (190, 30, 50) if "Wearing_Lipstick" in p.traits else _mix(p.skin, (170, 60, 60), 0.4)
    thick = 3.2 if "Big_Lips" in p.traits else 2.0
    if p.beard in ("mustache", "full"):
        pen.ellipse(fx, y - 6, 13, 3.5, fill=beard)
    if portrait.smiling and portrait.mouth_open:
        pen.chord(fx, y - 6, 14, 14, 0, 180, fill=lips)
        pen.chord(fx, y - 6, 14 - thick, 14 - thick, 0, 180, fill=(90, 20, 30))
        pen.chord(fx, y - 6, 14 - thick, 14 - thick - 4, 0, 180, fill=(250, 250, 245))
    elif portrait.smiling:
        pen.arc(fx, y - 8, 14, 10, 25, 155, fill=lips, width=thick + 0.5)
        pen.arc(fx, y - 8, 14, 10, 25, 155, fill=_mix(lips, (0, 0, 0), 0.5), width=0.8)
    elif portrait.mouth_open:
        pen.ellipse(fx, y, 7, 4.5, fill=(90, 20, 30), outline=lips, width=thick * 0.8)
    else:
        pen.ellipse(fx, y, 12, thick, fill=lips)
        pen.line([(fx - 12, y), (fx + 12, y)], fill=_mix(lips, (0, 0, 0), 0.5), width=0.8)


def _draw_glasses(pen, portrait, cx, fx, hw):
    if portrait.glasses == "none":
        return
    frame, lens = portrait.frame_colour, (25, 25, 35) if portrait.glasses == "sun" else None
    for side in (-1, 1):
        ex = fx + side * 19
        pen.ellipse(ex, 112, 12, 8.5, fill=lens, outline=frame, width=2)
        pen.line([(ex + side * 12, 110), (cx + side * (hw + 1), 112)], fill=frame, width=2)
    pen.arc(fx, 112, 7, 4, 200, 340, fill=frame, width=2)


def _draw_hat(pen, portrait, cx, hw):
    colour, band = portrait.hat_colour, _mix(portrait.hat_colour, (0, 0, 0), 0.35)
    if portrait.hat == "beanie":
        pen.chord(cx, 66, hw + 7, 58, 180, 360, fill=colour)
        pen.polygon([(cx - hw - 8, 56), (cx + hw + 8, 56), (cx + hw + 8, 72), (cx - hw - 8, 72)], band)
    elif portrait.hat == "cap":
        pen.chord(cx, 68, hw + 5, 60, 180, 360, fill=colour)
        pen.chord(cx + 8, 68, hw + 14, 9, 0, 180, fill=band)
    elif portrait.hat == "fedora":
        pen.ellipse(cx, 64, hw + 26, 10, fill=colour)
        pen.polygon([(cx - hw + 4, 62), (cx - hw + 8, 14), (cx, 8), (cx + hw - 8, 14), (cx + hw - 4, 62)], colour)
        pen.polygon([(cx - hw + 5, 50), (cx + hw - 5, 50), (cx + hw - 4, 62), (cx - hw + 4, 62)], band)


_ROWS, _COLUMNS = np.mgrid[-1:1:HEIGHT * 1j, -1:1:WIDTH * 1j].astype(np.float32)
_NOISE = np.random.default_rng(2015).standard_normal((HEIGHT + 64, WIDTH + 64, 3)).astype(np.float32) * 2.5 + 0.5  # + 0.5: round


def _light(pixels, portrait):
    """Brightness, a directional gradient, a slight colour tint and a little sensor noise: uint8 [H, W, 3]."""
    brightness, strength, angle, red, blue = portrait.light
    gain = brightness * (1 + strength * (np.cos(angle) * _COLUMNS + np.sin(angle) * _ROWS))
    lit = pixels * (gain[..., None] * np.array([1 + red, 1, 1 + blue], np.float32))
    row, column = portrait.noise_offset
    lit += _NOISE[row:row + HEIGHT, column:column + WIDTH]
    return np.clip(lit, 0, 255, out=lit).astype(np.uint8)
