"""The image pipeline end to end, through nginx: EXIF orientation, the client's crop, colour
spaces, alpha, header limits, damaged and animated input, metadata stripping, and what stays on
disk when an upload fails or an avatar is deleted.

Every fixture is built here, byte by byte where the point is the bytes (EXIF/TIFF structures,
crafted headers), with Pillow where it is the pixels. Colours are large flat regions so they
survive JPEG and lossy WebP; comparisons use region means and tolerances.
"""
import io
import json
import os
import random
import struct
import subprocess
import time
import zlib

import pytest
import requests
from PIL import Image, ImageChops, ImageOps, ImageStat

from conftest import sql, is_default_avatar

OUTPUT_SIZES = (512, 256, 128, 64)


# --------------------------------------------------------------------------------------------
# HTTP helpers (self-contained on purpose: other test modules change independently)


def auth(stack, user):
    return {"Authorization": f"Bearer {stack.token(user)}"}


def presign_and_put(stack, user, body, content_type, crop=None):
    """Presign (optionally with a crop) and PUT the body on the presigned URL."""
    request = {"content_type": content_type, "content_length": len(body)}
    if crop is not None:
        request["crop"] = crop
    presigned = requests.post(stack.url("/users/me/avatar/upload"), json=request, headers=auth(stack, user))
    assert presigned.status_code == 201, presigned.text
    info = presigned.json()
    response = requests.put(info["upload_url"], data=body, headers=info.get("headers") or {"Content-Type": content_type})
    return info, response


def post_avatar(stack, user, body, content_type, crop=None):
    """The multipart profile upload (field `file`, optional `crop` JSON part)."""
    files = {"file": ("upload.bin", body, content_type)}
    if crop is not None:
        files["crop"] = (None, json.dumps(crop), "application/json")
    return requests.post(stack.url("/api/v1/profile/me/avatar"), files=files, headers=auth(stack, user))


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["code"] == code, response.text
    return error


def assert_ready(response):
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["state"] == "ready", result
    return result


def fetch(url):
    response = requests.get(url)
    assert response.status_code == 200, (url, response.status_code)
    assert response.headers["Content-Type"] == "image/webp"
    return response.content


def published_image(result, size=512):
    """Decodes the published rendition of `size` and checks it is a square WebP of that size."""
    url = result["avatar_url"] if size == 512 else result["variants"][str(size)]
    data = fetch(url)
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.size == (size, size)
    return image


def media_state(stack, user, media_id):
    return requests.get(stack.url(f"/media/{media_id}"), headers=auth(stack, user)).json()


def user_dir(stack, user):
    return os.path.join(stack.media_root, "profile-media", user)


STABLE_NAMES = ["avatar-128.webp", "avatar-256.webp", "avatar-64.webp", "avatar.webp"]


def version_of(result):
    return result["avatar_url"].split("?v=")[1]


def assert_folder_shows(folder, current, kept=()):
    """The user's folder holds the stable names, each a link to the current version's file of
    its size, and the files of `current` and of the `kept` (older) versions, and nothing else."""
    names = sorted(os.listdir(folder))
    expected = set(STABLE_NAMES)
    for version in (current, *kept):
        expected |= {name.replace(".webp", f".{version}.webp") for name in STABLE_NAMES}
    assert names == sorted(expected), names
    for name in STABLE_NAMES:
        path = os.path.join(folder, name)
        assert os.path.islink(path) and os.readlink(path) == name.replace(".webp", f".{current}.webp"), (name, os.readlink(path))


# --------------------------------------------------------------------------------------------
# Pixel helpers


def region_mean(image, box):
    """Mean of each band over `box` (left, top, right, bottom)."""
    return tuple(ImageStat.Stat(image.crop(box)).mean)


def band_extrema(image, box):
    return image.crop(box).getextrema()


def close(colour, expected, tolerance):
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def quadrant_means(image, inset=48):
    """Means of the inner part of each quadrant of a square image: TL, TR, BL, BR."""
    half = image.size[0] // 2
    boxes = {
        "TL": (inset, inset, half - inset, half - inset),
        "TR": (half + inset, inset, 2 * half - inset, half - inset),
        "BL": (inset, half + inset, half - inset, 2 * half - inset),
        "BR": (half + inset, half + inset, 2 * half - inset, 2 * half - inset),
    }
    return {name: region_mean(image, box) for name, box in boxes.items()}


def encode(image, fmt, **params):
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def noisy(size, seed=7):
    """An RGB image with real entropy (random blocks), so its JPEG has a long scan."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    for x in range(0, size[0], 4):
        for y in range(0, size[1], 4):
            image.paste((rng.randrange(256), rng.randrange(256), rng.randrange(256)), (x, y, x + 4, y + 4))
    return image


# --------------------------------------------------------------------------------------------
# EXIF / TIFF built by hand


def _ifd(entries, offset, e):
    """One IFD at `offset` (from the TIFF header) followed by its out-of-line values."""
    entries = sorted(entries, key=lambda entry: entry[0])
    n = len(entries)
    data_offset = offset + 2 + 12 * n + 4
    head, data = struct.pack(e + "H", n), b""
    for tag, kind, count, raw in entries:
        if len(raw) <= 4:
            head += struct.pack(e + "HHI", tag, kind, count) + raw.ljust(4, b"\0")
        else:
            head += struct.pack(e + "HHII", tag, kind, count, data_offset + len(data))
            data += raw + (b"\0" if len(raw) % 2 else b"")
    return head + struct.pack(e + "I", 0) + data


GPS_MARKER = b"CameoGPSMarkerPlace"
CAMERA_MARKER = b"CameoTestCamera9000"
XMP_MARKER = b"CameoXmpSecretLocation"


def tiff(orientation=None, little=True, camera=False, gps=False):
    """A TIFF structure (what follows "Exif\\0\\0") with IFD0 holding the Orientation tag
    (SHORT) and, on request, Make/Model strings and a GPS IFD with coordinates."""
    e = "<" if little else ">"
    header = (b"II" if little else b"MM") + struct.pack(e + "HI", 42, 8)
    entries = []
    if orientation is not None:
        entries.append((0x0112, 3, 1, struct.pack(e + "H", orientation)))
    if camera:
        entries.append((0x010F, 2, len(CAMERA_MARKER) + 1, CAMERA_MARKER + b"\0"))
        entries.append((0x0110, 2, len(CAMERA_MARKER) + 4, CAMERA_MARKER + b"XYZ\0"))
    if gps:
        entries.append((0x8825, 4, 1, struct.pack(e + "I", 0)))
        gps_offset = 8 + len(_ifd(entries, 8, e))
        entries[-1] = (0x8825, 4, 1, struct.pack(e + "I", gps_offset))
    ifd0 = _ifd(entries, 8, e)
    body = header + ifd0
    if gps:
        assert len(body) == gps_offset
        gps_entries = [
            (0x0000, 1, 4, bytes([2, 3, 0, 0])),  # GPSVersionID
            (0x0001, 2, 2, b"N\0"),
            (0x0002, 5, 3, struct.pack(e + "6I", 48, 1, 51, 1, 292197, 10000)),
            (0x0003, 2, 2, b"E\0"),
            (0x0004, 5, 3, struct.pack(e + "6I", 2, 1, 17, 1, 40321, 10000)),
            (0x001B, 7, 8 + len(GPS_MARKER), b"ASCII\0\0\0" + GPS_MARKER),  # GPSProcessingMethod
        ]
        body += _ifd(gps_entries, gps_offset, e)
    return body


def jpeg_segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_segments(jpeg, *segments):
    """Inserts APPn segments right after SOI (where cameras put APP1 Exif)."""
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def exif_app1(tiff_bytes):
    return jpeg_segment(0xE1, b"Exif\0\0" + tiff_bytes)


def xmp_app1():
    packet = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
              b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description>"
              + XMP_MARKER + b"</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end='w'?>")
    return jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + packet)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_insert_before_idat(png, *chunks):
    index = png.index(b"IDAT") - 4
    return png[:index] + b"".join(chunks) + png[index:]


def riff_chunks(data):
    """FourCCs of the top-level chunks of a RIFF/WEBP file."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", data[:16]
    assert struct.unpack("<I", data[4:8])[0] + 8 == len(data), "RIFF size does not match the file"
    pos, found = 12, []
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        found.append(kind)
        pos += 8 + size + (size & 1)
    assert pos == len(data), "chunks do not tile the file"
    return found


# Pillow's exif_transpose applies these to show a stored image upright; the stored pixels for
# orientation N are therefore the upright image put through the inverse.
INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def stored_for(upright, orientation):
    return upright if INVERSE[orientation] is None else upright.transpose(INVERSE[orientation])


def oriented_jpeg(upright, orientation, little=True, **params):
    """A JPEG whose stored pixels, shown with EXIF `orientation`, are `upright`."""
    stored = stored_for(upright, orientation)
    body = with_segments(encode(stored, "JPEG", **params), exif_app1(tiff(orientation, little=little)))
    # The fixture itself is right: Pillow shows it upright.
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(body)))
    assert shown.size == upright.size
    return body


# --------------------------------------------------------------------------------------------
# 1. EXIF orientation

RED, GREEN, BLUE, WHITE = (225, 30, 30), (30, 200, 40), (30, 40, 225), (235, 235, 235)
YELLOW, MAGENTA = (230, 220, 20), (220, 20, 220)


def quadrant_card():
    """300x200, upright: a 200x200 centre square with four distinct quadrants (so every one of
    the eight flips/rotations gives a different picture), yellow and magenta strips outside."""
    image = Image.new("RGB", (300, 200), YELLOW)
    image.paste(MAGENTA, (250, 0, 300, 200))
    image.paste(RED, (50, 0, 150, 100))
    image.paste(GREEN, (150, 0, 250, 100))
    image.paste(BLUE, (50, 100, 150, 200))
    image.paste(WHITE, (150, 100, 250, 200))
    return image


def assert_quadrants(image, expected, tolerance=45):
    means = quadrant_means(image.convert("RGB"), inset=image.size[0] * 3 // 32)
    wrong = {k: tuple(round(c) for c in v) for k, v in means.items() if not close(v, expected[k], tolerance)}
    assert not wrong, f"quadrants differ from {expected}: {wrong}"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_published_upright(stack, user, orientation):
    # Alternate byte orders: the TIFF reader must handle "II" and "MM".
    body = oriented_jpeg(quadrant_card(), orientation, little=orientation % 2 == 1, quality=92)
    _, response = presign_and_put(stack, user, body, "image/jpeg")
    result = assert_ready(response)
    expected = {"TL": RED, "TR": GREEN, "BL": BLUE, "BR": WHITE}
    for size in OUTPUT_SIZES:
        assert_quadrants(published_image(result, size), expected)
    # The stored (not oriented) size is what the row records.
    stored = stored_for(quadrant_card(), orientation).size
    row = sql(stack, f"SELECT width, height FROM media_files WHERE id = '{result['media_id']}'")
    assert row == [[str(stored[0]), str(stored[1])]]


@pytest.mark.parametrize("kind", ["png", "webp"])
def test_orientation_in_png_and_webp_exif_is_applied(stack, user, kind):
    stored = stored_for(quadrant_card(), 6)
    if kind == "png":
        body = png_insert_before_idat(encode(stored, "PNG"), png_chunk(b"eXIf", tiff(6, little=False)))
    else:
        body = encode(stored, "WEBP", quality=92, exif=b"Exif\0\0" + tiff(6, little=False))
        assert b"EXIF" in riff_chunks(body)
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(body))).size == (300, 200)
    result = assert_ready(post_avatar(stack, user, body, f"image/{kind}"))
    assert_quadrants(published_image(result), {"TL": RED, "TR": GREEN, "BL": BLUE, "BR": WHITE})


# --------------------------------------------------------------------------------------------
# 2. The client's crop, to the pixel

BACKGROUND = 20  # luma of everything outside the crop
CROP = {"x": 97, "y": 211, "size": 128}  # in oriented pixels of a 300x400 (portrait) image


def crop_card():
    """300x400 upright, grey levels only (WebP keeps luma at full resolution): dark outside
    the crop square; inside, an 8 px checkerboard (230/140) with an asymmetric 24x40 block
    (185) in its top-left corner so any flip or transpose of the crop shows."""
    image = Image.new("L", (300, 400), BACKGROUND)
    x0, y0, s = CROP["x"], CROP["y"], CROP["size"]
    for cy in range(0, s, 8):
        for cx in range(0, s, 8):
            level = 230 if (cx // 8 + cy // 8) % 2 == 0 else 140
            image.paste(level, (x0 + cx, y0 + cy, x0 + cx + 8, y0 + cy + 8))
    image.paste(185, (x0, y0, x0 + 24, y0 + 40))
    return image.convert("RGB")


def reference_crop(upright_decoded, dx=0, dy=0, ds=0):
    x, y, s = CROP["x"] + dx, CROP["y"] + dy, CROP["size"] + ds
    return upright_decoded.convert("L").crop((x, y, x + s, y + s)).resize((512, 512), Image.Resampling.LANCZOS)


def mean_abs_diff(a, b, inset):
    box = (inset, inset, a.size[0] - inset, a.size[1] - inset)
    return ImageStat.Stat(ImageChops.difference(a.crop(box), b.crop(box))).mean[0]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_client_crop_is_honoured_to_the_pixel(stack, user, orientation):
    """The crop (97, 211, 128) fits the oriented 300x400 image but, for orientations 5-8, not
    the stored 400x300 one: it must be validated and mapped in oriented coordinates. The
    output must show exactly the crop square: no background anywhere (away from the outermost
    pixels, where the filter reaches across the edge), and closer to the exact crop than to any
    crop one pixel off."""
    upright = crop_card()
    body = oriented_jpeg(upright, orientation, quality=97, subsampling=0)
    _, response = presign_and_put(stack, user, body, "image/jpeg", crop=CROP)
    result = assert_ready(response)
    out = published_image(result).convert("L")

    # At 4x upscaling a crop one source pixel off shows ~4 output pixels of background at one
    # edge (min luma ~30 two pixels in); with the exact crop the filter's reach across the edge
    # only dims the outermost pixel row (the darkest checker level, 140, stays above ~105).
    low, _ = band_extrema(out, (2, 2, 510, 510))
    assert low > 80, f"background (luma {BACKGROUND}) inside the published crop: min luma {low}"

    # Compare with Pillow's rendering of the same crop of the same decoded pixels.
    decoded = ImageOps.exif_transpose(Image.open(io.BytesIO(body)))
    exact = mean_abs_diff(out, reference_crop(decoded), inset=8)
    shifted = {
        (dx, dy, ds): mean_abs_diff(out, reference_crop(decoded, dx, dy, ds), inset=8)
        for dx, dy, ds in [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    }
    assert exact < 6, f"published crop differs from the requested one (mean |diff| {exact:.1f})"
    assert all(exact < 0.6 * d for d in shifted.values()), (exact, shifted)
    # The small renditions come from the same window.
    small = published_image(result, 64).convert("L")
    reference = decoded.convert("L").crop((CROP["x"], CROP["y"], CROP["x"] + 128, CROP["y"] + 128))
    assert mean_abs_diff(small, reference.resize((64, 64), Image.Resampling.LANCZOS), inset=2) < 8


def test_crop_outside_the_oriented_image_is_bad_crop(stack, user):
    """Stored 400x300 with orientation 6 is 300x400 as displayed: x 150 + size 200 fits the
    stored width but not the displayed one. The crop is checked when the image is read, so
    the PUT answers 422 and nothing is published."""
    body = oriented_jpeg(crop_card(), 6, quality=90)
    for crop in ({"x": 150, "y": 0, "size": 200}, {"x": 0, "y": 0, "size": 301}, {"x": 0, "y": 300, "size": 101}):
        info, response = presign_and_put(stack, user, body, "image/jpeg", crop=crop)
        assert_error(response, 422, "bad_crop")
        state = media_state(stack, user, info["media_id"])
        assert state["state"] == "rejected", state
        assert "avatar_url" not in state
    assert requests.get(stack.url("/api/v1/profile/me/avatar"), headers=auth(stack, user)).status_code == 404
    assert not os.path.exists(user_dir(stack, user)) or os.listdir(user_dir(stack, user)) == []
    assert stack.files_under("quarantine") == []


def test_crop_touching_the_far_corner_is_accepted(stack, user):
    """The largest legal crop ending exactly at the oriented image's bottom-right corner."""
    body = oriented_jpeg(quadrant_card(), 8, quality=92)  # 300x200 displayed
    _, response = presign_and_put(stack, user, body, "image/jpeg", crop={"x": 100, "y": 0, "size": 200})
    result = assert_ready(response)
    # x 100..300 of the card: left half is red/blue and green/white split at x=150, then magenta.
    out = published_image(result).convert("RGB")
    assert close(region_mean(out, (400, 40, 500, 472)), MAGENTA, 45)  # x 256..300 of the card is magenta
    assert close(region_mean(out, (20, 20, 110, 230)), RED, 45)
    assert close(region_mean(out, (150, 20, 350, 230)), GREEN, 45)


def test_presign_refuses_a_malformed_crop(stack, user):
    """Shape errors are caught up front (422 bad_crop) and create no upload row."""
    token = stack.token(user)
    for crop in ({"x": -1, "y": 0, "size": 10}, {"x": 0, "y": 0, "size": 0}, {"x": 0, "y": 0, "size": 100000}):
        response = requests.post(stack.url("/users/me/avatar/upload"), json={"content_type": "image/jpeg", "content_length": 1000, "crop": crop},
                                 headers={"Authorization": f"Bearer {token}"})
        assert_error(response, 422, "bad_crop")
    assert sql(stack, f"SELECT COUNT(*) FROM media_files WHERE user_id = '{user}'") == [["0"]]


# --------------------------------------------------------------------------------------------
# 3. CMYK JPEG


@pytest.mark.parametrize("side", [256, 2048])
def test_cmyk_jpeg_colours_are_right(stack, user, side):
    """Pillow writes CMYK JPEGs the Adobe way (inverted values, APP14 marker). At 2048 px the
    decoder also scales the DCT by 1/2, with the CMYK conversion on the scaled rows."""
    ink = {  # C, M, Y, K as ink amounts
        "TL": (0, 255, 255, 0),  # red
        "TR": (255, 0, 255, 0),  # green
        "BL": (255, 255, 0, 0),  # blue
        "BR": (0, 0, 0, 0),  # white (no ink)
    }
    image = Image.new("CMYK", (side, side))
    h = side // 2
    for name, box in {"TL": (0, 0, h, h), "TR": (h, 0, side, h), "BL": (0, h, h, side), "BR": (h, h, side, side)}.items():
        image.paste(ink[name], box)
    body = encode(image, "JPEG", quality=95)
    assert b"Adobe" in body[:200]
    expected = {"TL": (255, 0, 0), "TR": (0, 255, 0), "BL": (0, 0, 255), "BR": (255, 255, 255)}
    # The fixture decodes to those colours in Pillow too.
    assert_quadrants(Image.open(io.BytesIO(body)).convert("RGB"), expected, tolerance=12)
    result = assert_ready(presign_and_put(stack, user, body, "image/jpeg")[1])
    assert_quadrants(published_image(result), expected, tolerance=40)


def test_cmyk_jpeg_with_black_ink_is_dark(stack, user):
    """K matters: 100 % black with no other ink is black, 50 % black is mid grey."""
    image = Image.new("CMYK", (256, 256), (0, 0, 0, 255))
    image.paste((0, 0, 0, 128), (0, 128, 256, 256))
    body = encode(image, "JPEG", quality=95)
    result = assert_ready(presign_and_put(stack, user, body, "image/jpeg")[1])
    out = published_image(result).convert("RGB")
    assert close(region_mean(out, (40, 40, 472, 216)), (0, 0, 0), 25)
    assert close(region_mean(out, (40, 296, 472, 472)), (127, 127, 127), 25)


# --------------------------------------------------------------------------------------------
# 4. Alpha


def half_transparent(kind):
    """256x256: left half fully transparent (with green colour under the zero alpha, which
    must not bleed), right half opaque red."""
    if kind == "rgba":
        image = Image.new("RGBA", (256, 256), (0, 255, 0, 0))
        image.paste((220, 20, 20, 255), (128, 0, 256, 256))
        return encode(image, "PNG")
    # Palette + tRNS: index 0 transparent green, index 1 opaque red.
    image = Image.new("P", (256, 256), 0)
    image.putpalette([0, 255, 0, 220, 20, 20] + [0] * (256 * 3 - 6))
    image.paste(1, (128, 0, 256, 256))
    return encode(image, "PNG", transparency=0)


@pytest.mark.parametrize("kind", ["rgba", "palette_trns"])
def test_transparent_png_keeps_alpha(stack, user, kind):
    body = half_transparent(kind)
    result = assert_ready(post_avatar(stack, user, body, "image/png"))
    for size in (512, 64):
        image = published_image(result, size)
        assert image.mode == "RGBA", f"{size}: alpha was dropped ({image.mode})"
        q = size // 8
        alpha = image.getchannel("A")
        assert band_extrema(alpha, (q, q, 3 * q, 7 * q))[1] <= 2, "transparent half is not transparent"
        assert band_extrema(alpha, (5 * q, q, 7 * q, 7 * q))[0] >= 253, "opaque half is not opaque"
        rgb = image.convert("RGB")
        assert close(region_mean(rgb, (5 * q, q, 7 * q, 7 * q)), (220, 20, 20), 30)
    # Along the edge, visible pixels must not pick up the green hidden under alpha 0.
    image = published_image(result).convert("RGBA")
    for y in range(64, 448, 16):
        for x in range(240, 272):
            r, g, b, a = image.getpixel((x, y))
            if a >= 192:
                assert g < 90 and r > 150, f"colour from under transparent pixels bled into ({x},{y}): {(r, g, b, a)}"
    chunks = riff_chunks(fetch(result["avatar_url"]))
    assert chunks[0] == b"VP8X" and b"ALPH" in chunks, chunks


def test_opaque_input_is_published_without_alpha(stack, user):
    body = encode(Image.new("RGB", (300, 300), RED), "PNG")
    result = assert_ready(post_avatar(stack, user, body, "image/png"))
    image = published_image(result)
    assert image.mode == "RGB" or band_extrema(image.getchannel("A"), (0, 0, 512, 512))[0] == 255


# --------------------------------------------------------------------------------------------
# 5. Header bombs


def heavy_worker_hwm(stack):
    """Peak RSS (kB) of every worker in the heavy pool, by pid."""
    with open(os.path.join(stack.state_dir, "run", "pool-heavy.pid")) as f:
        supervisor = f.read().strip()
    children = subprocess.run(["pgrep", "-P", supervisor], capture_output=True, text=True).stdout.split()
    peaks = {}
    for pid in children:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peaks[pid] = int(line.split()[1])
        except FileNotFoundError:
            pass
    return peaks


def png_claiming(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    # A few bytes of real deflate data (a handful of rows), far short of what the header says.
    idat = zlib.compress(b"\0" + b"\x80" * 64 * 4)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_claiming(width, height):
    """A real small JPEG whose SOF0 says `width` x `height`."""
    body = bytearray(encode(noisy((64, 48)), "JPEG", quality=80))
    sof = body.index(b"\xff\xc0")
    assert struct.unpack(">HH", body[sof + 5 : sof + 9]) == (48, 64)
    body[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(body)


def webp_claiming(width, height):
    """A lossless WebP (VP8L) header saying `width` x `height` (14 bits each, max 16384)."""
    bits = (width - 1) | (height - 1) << 14 | 1 << 28  # alpha hint, version 0
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\0" * 32
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


HEADER_BOMBS = {
    "png_60000x60000": ("image/png", lambda: png_claiming(60000, 60000), (60000, 60000)),
    "jpeg_60000x60000": ("image/jpeg", lambda: jpeg_claiming(60000, 60000), (60000, 60000)),
    "webp_16384x16384": ("image/webp", lambda: webp_claiming(16384, 16384), (16384, 16384)),
    "png_60000x1": ("image/png", lambda: png_claiming(60000, 1), (60000, 1)),
    "jpeg_2048x2049": ("image/jpeg", lambda: jpeg_claiming(2048, 2049), (2048, 2049)),
}


@pytest.mark.parametrize("kind", list(HEADER_BOMBS))
def test_huge_header_is_bad_dimensions_without_allocating(stack, user, kind, monkeypatch):
    content_type, build, size = HEADER_BOMBS[kind]
    body = build()
    assert len(body) < 4096
    # Sanity: the crafted header says what we meant. Pillow reads PNG and JPEG headers lazily
    # (with its own bomb guard off); the VP8L header is checked bit by bit.
    if content_type == "image/webp":
        bits = struct.unpack("<I", body[21:25])[0]
        assert body[12:16] == b"VP8L" and body[20] == 0x2F
        assert ((bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1) == size
    else:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
        assert Image.open(io.BytesIO(body)).size == size
    before = heavy_worker_hwm(stack)
    info, response = presign_and_put(stack, user, body, content_type)
    error = assert_error(response, 422, "bad_dimensions")
    assert error["limit"] == 2048
    state = media_state(stack, user, info["media_id"])
    assert state["state"] == "rejected" and state["reject_reason"] == "bad_dimensions", state
    # Direct upload answers the same.
    direct = post_avatar(stack, user, body, content_type)
    assert assert_error(direct, 422, "bad_dimensions")["limit"] == 2048
    after = heavy_worker_hwm(stack)
    assert before and after
    baseline = max(before.values())
    for pid, peak in after.items():
        grew = peak - before.get(pid, baseline)
        assert grew < 8 * 1024, f"heavy worker {pid} peak RSS grew by {grew} kB on a header-only bomb"
    assert stack.files_under("quarantine") == [] and stack.files_under("incoming") == []


@pytest.mark.parametrize("orientation", [1, 6, 7])
def test_largest_allowed_image_is_accepted_and_oriented(stack, user, orientation):
    """2048x2048 is inside both limits (4.19 MP < 4.2 MP): rendered, not refused. A 2048 crop
    is where the JPEG decoder scales by 1/2 before filtering; orientation must still hold."""
    upright = Image.new("RGB", (2048, 2048))
    for name, colour, box in (("TL", RED, (0, 0, 1024, 1024)), ("TR", GREEN, (1024, 0, 2048, 1024)),
                              ("BL", BLUE, (0, 1024, 1024, 2048)), ("BR", WHITE, (1024, 1024, 2048, 2048))):
        upright.paste(colour, box)
    body = oriented_jpeg(upright, orientation, quality=85)
    result = assert_ready(presign_and_put(stack, user, body, "image/jpeg")[1])
    for size in OUTPUT_SIZES:
        assert_quadrants(published_image(result, size), {"TL": RED, "TR": GREEN, "BL": BLUE, "BR": WHITE})


# --------------------------------------------------------------------------------------------
# 6. Damaged input


def truncated(kind):
    image = noisy((400, 300))
    if kind == "jpeg":
        whole = encode(image, "JPEG", quality=90)
    elif kind == "progressive_jpeg":
        whole = encode(image, "JPEG", quality=90, progressive=True)
    elif kind == "png":
        whole = encode(image, "PNG")
    else:
        whole = encode(image, "WEBP", quality=90)
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    "kind,content_type",
    [("jpeg", "image/jpeg"), ("progressive_jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")],
)
def test_truncated_image_is_corrupt(stack, user, kind, content_type):
    body = truncated(kind)
    info, response = presign_and_put(stack, user, body, content_type)
    assert_error(response, 422, "corrupt")
    state = media_state(stack, user, info["media_id"])
    assert state["state"] == "rejected" and state["reject_reason"] == "corrupt", state
    assert stack.files_under("quarantine") == []
    assert not os.path.exists(user_dir(stack, user)) or os.listdir(user_dir(stack, user)) == []


# --------------------------------------------------------------------------------------------
# 7. Metadata is not carried over


def gps_tagged(kind):
    image = noisy((320, 240), seed=3)
    exif = tiff(1, little=True, camera=True, gps=True)
    if kind == "jpeg":
        return with_segments(encode(image, "JPEG", quality=90), exif_app1(exif), xmp_app1())
    if kind == "png":
        png = encode(image, "PNG")
        xmp = b"XML:com.adobe.xmp\0\0\0\0\0" + xmp_app1()[33:]
        return png_insert_before_idat(png, png_chunk(b"eXIf", exif), png_chunk(b"iTXt", xmp))
    return encode(image, "WEBP", quality=90, exif=b"Exif\0\0" + exif, xmp=xmp_app1()[33:])


@pytest.mark.parametrize("kind,content_type", [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")])
def test_gps_and_camera_metadata_are_not_published(stack, user, kind, content_type):
    body = gps_tagged(kind)
    for marker in (GPS_MARKER, CAMERA_MARKER, XMP_MARKER):
        assert marker in body
    # The fixture really carries GPS coordinates (as Pillow reads them).
    gps = Image.open(io.BytesIO(body)).getexif().get_ifd(0x8825)
    assert gps.get(1) == "N" and len(gps.get(2, ())) == 3, gps
    result = assert_ready(presign_and_put(stack, user, body, content_type)[1])
    latitude = struct.pack("<6I", 48, 1, 51, 1, 292197, 10000)
    for size in OUTPUT_SIZES:
        url = result["avatar_url"] if size == 512 else result["variants"][str(size)]
        data = fetch(url)
        chunks = riff_chunks(data)
        assert not {b"EXIF", b"XMP ", b"ICCP"} & set(chunks), chunks
        for needle in (GPS_MARKER, CAMERA_MARKER, XMP_MARKER, b"Exif", b"xmpmeta", latitude):
            assert needle not in data, (size, needle)
        assert not Image.open(io.BytesIO(data)).getexif()


# --------------------------------------------------------------------------------------------
# 8. A failed upload changes nothing


def dot_files(directory):
    return [name for name in os.listdir(directory) if name.startswith(".")] if os.path.isdir(directory) else []


def test_failed_upload_leaves_previous_avatar_and_no_temporary_files(stack, user):
    first = assert_ready(presign_and_put(stack, user, encode(quadrant_card(), "JPEG", quality=90), "image/jpeg")[1])
    urls = [first["avatar_url"]] + [first["variants"][str(s)] for s in OUTPUT_SIZES[1:]]
    before = {url.split("?")[0]: fetch(url) for url in urls}
    folder = user_dir(stack, user)
    files_before = sorted(os.listdir(folder))
    assert_folder_shows(folder, version_of(first))

    broken = truncated("jpeg")
    # Through the presigned URL, through the multipart route, and a crop that cannot fit.
    info, response = presign_and_put(stack, user, broken, "image/jpeg")
    assert_error(response, 422, "corrupt")
    assert_error(post_avatar(stack, user, broken, "image/jpeg"), 422, "corrupt")
    big = encode(noisy((200, 200)), "JPEG", quality=90)
    assert_error(presign_and_put(stack, user, big, "image/jpeg", crop={"x": 50, "y": 50, "size": 160})[1], 422, "bad_crop")

    for plain, content in before.items():
        assert requests.get(plain).content == content, f"{plain} changed after a failed upload"
    current = requests.get(stack.url("/api/v1/profile/me/avatar"), headers=auth(stack, user))
    assert current.status_code == 200 and current.json()["media_id"] == first["media_id"], current.text
    assert current.json()["avatar_url"] == first["avatar_url"]
    assert sorted(os.listdir(folder)) == files_before
    assert dot_files(folder) == []
    assert stack.files_under("quarantine") == []
    assert stack.files_under("incoming") == []
    assert sql(stack, f"SELECT media_id FROM user_avatars WHERE user_id = '{user}'") == [[first["media_id"]]]
    assert media_state(stack, user, info["media_id"])["reject_reason"] == "corrupt"


def test_replacing_an_avatar_leaves_no_temporary_files(stack, user):
    first = assert_ready(post_avatar(stack, user, encode(Image.new("RGB", (200, 200), RED), "PNG"), "image/png"))
    old_bytes = fetch(first["avatar_url"])
    second = assert_ready(post_avatar(stack, user, encode(Image.new("RGB", (200, 200), BLUE), "PNG"), "image/png"))
    assert first["avatar_url"] != second["avatar_url"]
    folder = user_dir(stack, user)
    # The stable names point at the new version; the old one's files stay until the sweeper.
    assert_folder_shows(folder, version_of(second), kept=[version_of(first)])
    for size in OUTPUT_SIZES:
        assert close(region_mean(published_image(second, size).convert("RGB"), (0, 0, size, size)), BLUE, 30)
    assert requests.get(first["avatar_url"].split("?")[0]).content == fetch(second["avatar_url"])
    # A versioned URL serves exactly its version: the old one still shows the old avatar...
    assert fetch(first["avatar_url"]) == old_bytes
    # ...until the sweeper removes versions no pointer names (once they are old enough).
    day_ago = time.time() - 2 * 86400
    for name in os.listdir(folder):
        if version_of(first) in name:
            os.utime(os.path.join(folder, name), (day_ago, day_ago))
    stack.ctl("sweep")
    assert_folder_shows(folder, version_of(second))
    assert requests.get(first["avatar_url"]).status_code == 404
    assert fetch(second["avatar_url"]) == requests.get(second["avatar_url"].split("?")[0]).content


# --------------------------------------------------------------------------------------------
# 9. DELETE


def test_delete_removes_every_file_and_the_folder(stack, user):
    result = assert_ready(presign_and_put(stack, user, encode(quadrant_card(), "JPEG", quality=90), "image/jpeg")[1])
    folder = user_dir(stack, user)
    assert_folder_shows(folder, version_of(result))
    urls = [result["avatar_url"]] + list(result["variants"].values())
    response = requests.delete(stack.url("/api/v1/profile/me/avatar"), headers=auth(stack, user))
    assert response.status_code == 204, response.text
    assert not os.path.exists(folder), os.listdir(folder)
    for url in urls:
        assert requests.get(url).status_code == 404, url
        assert is_default_avatar(requests.get(url.split("?")[0])), url
        assert requests.get(url.split("?")[0] + "?d=404").status_code == 404, url
    assert_error(requests.get(stack.url("/api/v1/profile/me/avatar"), headers=auth(stack, user)), 404, "no_avatar")
    assert sql(stack, f"SELECT COUNT(*) FROM user_avatars WHERE user_id = '{user}'") == [["0"]]
    # A new upload after the delete publishes again.
    again = assert_ready(post_avatar(stack, user, encode(Image.new("RGB", (100, 100), GREEN), "PNG"), "image/png"))
    assert close(region_mean(published_image(again).convert("RGB"), (0, 0, 512, 512)), GREEN, 30)


# --------------------------------------------------------------------------------------------
# 10. Animation


def animated(kind):
    frames = [Image.new("RGB", (240, 160), colour) for colour in (RED, GREEN, BLUE)]
    # Some structure in later frames, so encoders do not collapse them.
    frames[1].paste(WHITE, (0, 0, 60, 60))
    fmt = "WEBP" if kind == "webp" else "PNG"
    params = {"lossless": True} if kind == "webp" else {}
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=[100, 100, 100], loop=0, **params)


@pytest.mark.parametrize("kind,content_type", [("webp", "image/webp"), ("apng", "image/png")])
def test_animated_input_is_published_from_its_first_frame(stack, user, kind, content_type):
    body = animated(kind)
    reread = Image.open(io.BytesIO(body))
    assert reread.n_frames == 3 and getattr(reread, "is_animated", False)
    result = assert_ready(presign_and_put(stack, user, body, content_type)[1])
    for size in OUTPUT_SIZES:
        image = published_image(result, size).convert("RGB")
        mean = region_mean(image, (size // 8, size // 8, 7 * size // 8, 7 * size // 8))
        assert close(mean, RED, 30), f"{size}: not the first frame's colour: {mean}"


# --------------------------------------------------------------------------------------------
# 11. Bytes after the image


JUNK = (b"<?php system($_GET['c']); ?>" + bytes(range(256))) * 40


@pytest.mark.parametrize("kind,content_type", [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")])
def test_trailing_bytes_are_not_published(stack, user, kind, content_type):
    image = Image.new("RGB", (300, 300), GREEN)
    image.paste(RED, (0, 0, 150, 300))
    clean = encode(image, {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[kind], **({"quality": 90} if kind != "png" else {}))
    first = assert_ready(post_avatar(stack, user, clean, content_type))
    reference = {size: fetch(first["avatar_url"] if size == 512 else first["variants"][str(size)]) for size in OUTPUT_SIZES}

    second = assert_ready(presign_and_put(stack, user, clean + JUNK, content_type)[1])
    for size in OUTPUT_SIZES:
        data = fetch(second["avatar_url"] if size == 512 else second["variants"][str(size)])
        assert b"<?php" not in data and bytes(range(32, 96)) not in data
        riff_chunks(data)
        # Same pixels in, same file out: the junk left no trace.
        assert data == reference[size], f"{size}: output differs from the clean upload's"
    assert second["avatar_url"] == first["avatar_url"]
    out = published_image(second).convert("RGB")
    assert close(region_mean(out, (20, 20, 236, 492)), RED, 30)
    assert close(region_mean(out, (276, 20, 492, 492)), GREEN, 30)


# --------------------------------------------------------------------------------------------
# Less common encodings of the same picture


def encoding_variant(kind):
    card = Image.new("RGB", (240, 240))
    for colour, box in ((RED, (0, 0, 120, 120)), (GREEN, (120, 0, 240, 120)), (BLUE, (0, 120, 120, 240)), (WHITE, (120, 120, 240, 240))):
        card.paste(colour, box)
    if kind == "gray_jpeg":
        return "image/jpeg", encode(card.convert("L"), "JPEG", quality=92), card.convert("L").convert("RGB")
    if kind == "jpeg_restart_markers":
        body = encode(card, "JPEG", quality=92, restart_marker_blocks=4)
        assert b"\xff\xdd" in body and b"\xff\xd0" in body  # DRI and RST0
        return "image/jpeg", body, card
    if kind == "progressive_gray_jpeg_2048":
        big = card.convert("L").resize((2048, 2048), Image.Resampling.NEAREST)
        return "image/jpeg", encode(big, "JPEG", quality=90, progressive=True), card.convert("L").convert("RGB")
    if kind == "progressive_jpeg_420":
        return "image/jpeg", encode(card, "JPEG", quality=92, progressive=True, subsampling=2), card
    if kind == "gray16_png":
        gray = card.convert("L")
        wide = gray.point(lambda v: v * 257, "I").convert("I;16")
        return "image/png", encode(wide, "PNG"), gray.convert("RGB")
    if kind == "gray_alpha_png":
        la = card.convert("L").convert("LA")
        return "image/png", encode(la, "PNG"), card.convert("L").convert("RGB")
    if kind == "palette_png":
        return "image/png", encode(card.quantize(8), "PNG"), card
    if kind == "lossless_webp":
        rgba = card.convert("RGBA")
        return "image/webp", encode(rgba, "WEBP", lossless=True), card
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["gray_jpeg", "jpeg_restart_markers", "progressive_gray_jpeg_2048", "progressive_jpeg_420", "gray16_png", "gray_alpha_png", "palette_png", "lossless_webp"]
)
def test_less_common_encodings_keep_their_colours(stack, user, kind):
    content_type, body, expected_image = encoding_variant(kind)
    expected = quadrant_means(expected_image.resize((512, 512)))
    result = assert_ready(presign_and_put(stack, user, body, content_type)[1])
    for size in (512, 64):
        assert_quadrants(published_image(result, size), {k: tuple(v) for k, v in expected.items()}, tolerance=30)
