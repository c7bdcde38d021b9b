"""Colour tools for the colour-management tests, written from the ICC and CIE documents: an
ICC v2 matrix/TRC profile writer, conversions from sRGB into other RGB spaces, and CIEDE2000.
Nothing here comes from the code under test (that uses littlecms)."""
import struct

import numpy as np

D65 = (0.3127, 0.3290)
D50 = (0.3457, 0.3585)
# Primaries (x, y) and white of each space; its transfer: a gamma, or "srgb".
SPACES = {
    "srgb": {"primaries": ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), "white": D65, "transfer": "srgb"},
    "adobe-rgb": {"primaries": ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), "white": D65, "transfer": 563 / 256},
    "display-p3": {"primaries": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), "white": D65, "transfer": "srgb"},
    "prophoto": {"primaries": ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), "white": D50, "transfer": 1.8},
}
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def xyz(xy):
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(space):
    """Linear RGB → XYZ relative to the space's own white."""
    primaries = np.array([xyz(p) for p in space["primaries"]]).T
    scale = np.linalg.solve(primaries, xyz(space["white"]))
    return primaries * scale


def adaptation(source_white, target_white):
    """Bradford chromatic adaptation between two whites (as ICC profiles use to reach D50)."""
    source, target = BRADFORD @ xyz(source_white), BRADFORD @ xyz(target_white)
    return np.linalg.inv(BRADFORD) @ np.diag(target / source) @ BRADFORD


def decode(values, transfer):
    v = values.astype(np.float64) / 255.0
    if transfer == "srgb":
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return v ** transfer


def encode(linear, transfer):
    v = np.clip(linear, 0.0, 1.0)
    if transfer == "srgb":
        v = np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)
    else:
        v = v ** (1 / transfer)
    return np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8)


def convert_srgb(pixels, name):
    """sRGB pixels (H×W×3 uint8) as the same colours in another space, relative colorimetric."""
    source, target = SPACES["srgb"], SPACES[name]
    matrix = np.linalg.inv(rgb_to_xyz_matrix(target)) @ adaptation(source["white"], target["white"]) @ rgb_to_xyz_matrix(source)
    linear = decode(pixels, "srgb") @ matrix.T
    return encode(linear, target["transfer"])


def s15fixed16(value):
    return struct.pack(">i", int(round(value * 65536)))


def icc_profile(name, swap_red_green=False, description=None):
    """An ICC v2.1 display profile (matrix/TRC) of one of SPACES, colorants adapted to D50.
    With `swap_red_green` its red and green colorants change places: a file tagged with it
    stores green in its first channel."""
    space = SPACES[name]
    to_d50 = adaptation(space["white"], D50) @ rgb_to_xyz_matrix(space)
    columns = [to_d50[:, 0], to_d50[:, 1], to_d50[:, 2]]
    if swap_red_green:
        columns[0], columns[1] = columns[1], columns[0]

    def xyz_tag(v):
        return b"XYZ " + b"\0" * 4 + b"".join(s15fixed16(c) for c in v)

    if space["transfer"] == "srgb":
        table = encode_table = [int(round(65535 * float(decode(np.array([i * 255.0 / 1023]), "srgb")[0]))) for i in range(1024)]
        curve = b"curv" + b"\0" * 4 + struct.pack(">I", len(table)) + b"".join(struct.pack(">H", t) for t in encode_table)
    else:
        curve = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", int(round(space["transfer"] * 256)))
    description = description or f"Cameo test {name}{' (red/green swapped)' if swap_red_green else ''}"
    tags = [(b"desc", _desc(description)), (b"cprt", b"text" + b"\0" * 4 + b"no copyright, test data\0"),
            (b"wtpt", xyz_tag(xyz(D50) * 1.0)), (b"rXYZ", xyz_tag(columns[0])), (b"gXYZ", xyz_tag(columns[1])),
            (b"bXYZ", xyz_tag(columns[2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    return _profile(b"mntr", b"RGB ", b"XYZ ", tags)


def _profile(device_class, space, pcs, tags):
    """An ICC v2.1 profile of `tags` [(signature, body)], header and tag table laid out."""
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        while (offset + len(data)) % 4:
            data += b"\0"
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    header = (struct.pack(">I", 128 + len(body)) + b"none" + bytes([2, 0x10, 0, 0]) + device_class + space + pcs + b"\0" * 12
              + b"acsp" + b"APPL" + b"\0" * 4 + b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + b"\0" * 4
              + s15fixed16(0.9642) + s15fixed16(1.0) + s15fixed16(0.8249) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + body


def _desc(text):
    text = text.encode()
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 4 + b"\0" * 4 + b"\0" * 2 + b"\0" + b"\0" * 67


# The test CMYK press: ink amount i of each of C, M, Y covers i^INK_GAMMA of its primary, and
# black scales what is left. A plain R = (1 - C)(1 - K), what a decoder without the profile
# does, is far off in the mid-tones.
INK_GAMMA = 1.8


def cmyk_to_srgb_encoded(ink):
    """sRGB-encoded values (0..1) the test press shows for ink amounts (…×4, 0..1)."""
    return (1 - ink[..., :3] ** INK_GAMMA) * (1 - ink[..., 3:4])


def srgb_to_cmyk(pixels):
    """sRGB pixels (H×W×3 uint8) as ink amounts (H×W×4 uint8) for the test press, with half
    the grey component replaced by black."""
    p = pixels.astype(np.float64) / 255
    k = 0.5 * (1 - p.max(axis=-1, keepdims=True))
    cmy = np.clip(1 - p / (1 - k), 0, 1) ** (1 / INK_GAMMA)
    return np.clip(np.round(np.concatenate([cmy, k], axis=-1) * 255), 0, 255).astype(np.uint8)


def cmyk_profile(grid=17):
    """An ICC v2 output (press) profile of the test press: a CMYK → Lab lut16 (mft2) table of
    grid⁴ nodes, as real press profiles are built."""
    axis = np.linspace(0, 1, grid)
    nodes = np.stack(np.meshgrid(axis, axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 4)
    lab = srgb_to_lab(cmyk_to_srgb_encoded(nodes) * 255)
    # lut16's legacy Lab encoding: L 0..100 → 0..0xFF00, a and b −128..127.996 → 0..0xFFFF.
    encoded = np.stack([lab[:, 0] / 100 * 0xFF00, (lab[:, 1] + 128) * 256, (lab[:, 2] + 128) * 256], axis=-1)
    clut = np.clip(np.round(encoded), 0, 0xFFFF).astype(">u2").tobytes()
    identity = b"".join(s15fixed16(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramp = struct.pack(">HH", 0, 0xFFFF)
    lut = b"mft2" + b"\0" * 4 + bytes([4, 3, grid, 0]) + identity + struct.pack(">HH", 2, 2) + ramp * 4 + clut + ramp * 3
    xyz_tag = b"XYZ " + b"\0" * 4 + b"".join(s15fixed16(c) for c in xyz(D50))
    return _profile(b"prtr", b"CMYK", b"Lab ", [(b"desc", _desc("Cameo test press (CMYK)")), (b"wtpt", xyz_tag), (b"A2B0", lut)])


def lut_bomb_profile(space=b"CMYK", inputs=4, grid=80):
    """A profile of a few hundred bytes whose lut16 table declares grid^inputs nodes (80⁴ × 3
    outputs is 245 MB) and holds none of them."""
    identity = b"".join(s15fixed16(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramp = struct.pack(">HH", 0, 0xFFFF)
    lut = b"mft2" + b"\0" * 4 + bytes([inputs, 3, grid, 0]) + identity + struct.pack(">HH", 2, 2) + ramp * inputs + ramp * 8
    return _profile(b"prtr", space, b"Lab ", [(b"desc", _desc("Cameo test grid bomb")), (b"A2B0", lut)])


def srgb_to_lab(pixels):
    """CIE L*a*b* (D50, as ICC's connection space) of sRGB pixels."""
    space = SPACES["srgb"]
    xyz_d50 = decode(pixels, "srgb") @ (adaptation(space["white"], D50) @ rgb_to_xyz_matrix(space)).T / xyz(D50)
    f = np.where(xyz_d50 > (6 / 29) ** 3, np.cbrt(xyz_d50), xyz_d50 / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1, lab2):
    """CIEDE2000 colour difference per pixel (Sharma, Wu and Dalal's formulation)."""
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    C1, C2 = np.hypot(a1, b1), np.hypot(a2, b2)
    Cbar = (C1 + C2) / 2
    G = 0.5 * (1 - np.sqrt(Cbar ** 7 / (Cbar ** 7 + 25 ** 7)))
    a1p, a2p = (1 + G) * a1, (1 + G) * a2
    C1p, C2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p, h2p = np.degrees(np.arctan2(b1, a1p)) % 360, np.degrees(np.arctan2(b2, a2p)) % 360
    dLp, dCp = L2 - L1, C2p - C1p
    dh = h2p - h1p
    dh = np.where(C1p * C2p == 0, 0, np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh)))
    dHp = 2 * np.sqrt(C1p * C2p) * np.sin(np.radians(dh / 2))
    Lbarp, Cbarp = (L1 + L2) / 2, (C1p + C2p) / 2
    hsum = h1p + h2p
    hbarp = np.where(C1p * C2p == 0, hsum, np.where(np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)))
    T = (1 - 0.17 * np.cos(np.radians(hbarp - 30)) + 0.24 * np.cos(np.radians(2 * hbarp)) + 0.32 * np.cos(np.radians(3 * hbarp + 6))
         - 0.20 * np.cos(np.radians(4 * hbarp - 63)))
    dtheta = 30 * np.exp(-(((hbarp - 275) / 25) ** 2))
    Rc = 2 * np.sqrt(Cbarp ** 7 / (Cbarp ** 7 + 25 ** 7))
    Sl = 1 + 0.015 * (Lbarp - 50) ** 2 / np.sqrt(20 + (Lbarp - 50) ** 2)
    Sc, Sh = 1 + 0.045 * Cbarp, 1 + 0.015 * Cbarp * T
    Rt = -np.sin(np.radians(2 * dtheta)) * Rc
    return np.sqrt((dLp / Sl) ** 2 + (dCp / Sc) ** 2 + (dHp / Sh) ** 2 + Rt * (dCp / Sc) * (dHp / Sh))
