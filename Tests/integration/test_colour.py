"""Colour management through the real path: a JPEG tagged with its ICC profile (Adobe RGB,
Display P3, ProPhoto, one whose red and green colorants are swapped) is published with the
colours of the same picture uploaded as sRGB; the same file with its profile stripped is far
off, which shows the test can fail. Profiles and conversions come from colour.py (written from
the ICC and CIE documents), not from the code under test."""
import io
import os

import numpy as np
import pytest
import requests
from PIL import Image

import colour
from test_upload_flow import upload


def saturated_picture(side=256):
    """Hues all round at full and half saturation, light to dark: colours every space differs on."""
    y, x = np.mgrid[0:side, 0:side] / (side - 1)
    hue = x * 6.0
    sector = np.floor(hue) % 6
    f = hue - np.floor(hue)
    value = 0.55 + 0.45 * (1 - np.abs(2 * y - 1))
    saturation = np.ones_like(y)
    p, q, t = value * (1 - saturation), value * (1 - saturation * f), value * (1 - saturation * (1 - f))
    choices = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)]
    rgb = np.zeros((side, side, 3))
    for index, (r, g, b) in enumerate(choices):
        mask = sector == index
        rgb[mask] = np.stack([r, g, b], axis=-1)[mask]
    return np.round(rgb * 255).astype(np.uint8)


def jpeg(pixels, profile=None, kind="jpeg"):
    """The picture as a file of `kind` (lossless but for JPEG), tagged with `profile` if given."""
    out = io.BytesIO()
    tag = {"icc_profile": profile} if profile else {}
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if kind == "jpeg":
        image.save(out, "JPEG", quality=95, subsampling=0, **tag)
    elif kind == "png":
        image.save(out, "PNG", **tag)
    else:
        image.save(out, "WEBP", lossless=True, **tag)
    return out.getvalue()


TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def published(stack, user, body):
    kind = "png" if body.startswith(b"\x89PNG") else "webp" if body[8:12] == b"WEBP" else "jpeg"
    _, response = upload(stack, user, body, TYPES[kind])
    assert response.status_code == 200 and response.json()["state"] == "ready", response.text
    served = requests.get(response.json()["avatar_url"])
    image = Image.open(io.BytesIO(served.content))
    assert "icc_profile" not in image.info, "the output carries no profile: it is sRGB"
    return np.asarray(image.convert("RGB"))


def mean_difference(a, b):
    return float(colour.ciede2000(colour.srgb_to_lab(a), colour.srgb_to_lab(b)).mean())


@pytest.fixture(scope="module")
def reference(stack):
    picture = saturated_picture()
    return picture, published(stack, "colourref", jpeg(picture))


@pytest.mark.parametrize("kind,space", [
    ("jpeg", "adobe-rgb"), ("jpeg", "display-p3"), ("jpeg", "prophoto"),
    ("png", "adobe-rgb"), ("png", "display-p3"), ("png", "prophoto"), ("webp", "display-p3"), ("webp", "adobe-rgb"),
])
def test_a_tagged_file_is_published_in_the_colours_it_was_seen_in(stack, user, reference, kind, space):
    picture, expected = reference
    encoded = colour.convert_srgb(picture, space)
    tagged = mean_difference(published(stack, user + "t", jpeg(encoded, colour.icc_profile(space), kind)), expected)
    stripped = mean_difference(published(stack, user + "s", jpeg(encoded, None, kind)), expected)
    print(f"\n{kind} {space}: mean dE00 tagged {tagged:.2f}, stripped {stripped:.2f}")
    assert tagged <= 1.0, tagged
    assert stripped > 3.0, stripped


def test_a_profile_that_swaps_two_channels_puts_them_back(stack, user, reference):
    picture, expected = reference
    swapped = picture[..., [1, 0, 2]]
    # Named as sRGB's own profile is: what a profile says counts, not what it is called.
    profile = colour.icc_profile("srgb", swap_red_green=True, description="sRGB IEC61966-2.1")
    tagged = mean_difference(published(stack, user + "t", jpeg(swapped, profile)), expected)
    stripped = mean_difference(published(stack, user + "s", jpeg(swapped)), expected)
    assert tagged <= 1.0, tagged
    assert stripped > 3.0, stripped


def heavy_log(stack):
    with open(os.path.join(stack.state_dir, "log", "pool-heavy.log"), errors="replace") as f:
        return f.read()


def test_an_srgb_tagged_jpeg_needs_no_conversion(stack, user, reference):
    picture, expected = reference
    _, response = upload(stack, user, jpeg(picture, colour.icc_profile("srgb")), "image/jpeg")
    assert response.json()["state"] == "ready"
    # The profile says sRGB (whatever it is called): no transform ran, and none was logged.
    assert f"upload {response.json()['media_id']}: colours converted" not in heavy_log(stack)


def test_a_photo_sized_source_and_every_rendition_are_converted(stack, user):
    # 1024² (the path real photos take: the smaller sizes come from the 512 one), in P3.
    picture = np.kron(saturated_picture(), np.ones((4, 4, 1), dtype=np.uint8))
    plain = {}
    _, reference = upload(stack, user + "r", jpeg(picture), "image/jpeg")
    _, tagged = upload(stack, user + "t", jpeg(colour.convert_srgb(picture, "display-p3"), colour.icc_profile("display-p3")), "image/jpeg")
    for size, url in reference.json()["variants"].items():
        plain[size] = np.asarray(Image.open(io.BytesIO(requests.get(url).content)).convert("RGB"))
    for size, url in tagged.json()["variants"].items():
        seen = np.asarray(Image.open(io.BytesIO(requests.get(url).content)).convert("RGB"))
        assert mean_difference(seen, plain[size]) <= 1.0, size


def test_a_tagged_png_with_transparency_keeps_its_alpha(stack, user, reference):
    picture, expected = reference
    alpha = np.tile(np.linspace(255, 64, picture.shape[1]).astype(np.uint8), (picture.shape[0], 1))[..., None]
    rgba = np.concatenate([colour.convert_srgb(picture, "adobe-rgb"), alpha], axis=-1)
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG", icc_profile=colour.icc_profile("adobe-rgb"))
    _, response = upload(stack, user, out.getvalue(), "image/png")
    served = Image.open(io.BytesIO(requests.get(response.json()["avatar_url"]).content))
    assert served.mode == "RGBA"
    pixels = np.asarray(served)
    assert pixels[:, :8, 3].mean() > 240 and pixels[:, -8:, 3].mean() < 80, "the alpha ramp survives"
    assert mean_difference(pixels[..., :3], expected) <= 1.0


def test_a_broken_profile_is_ignored_logged_and_the_upload_published(stack, user, reference):
    picture, expected = reference
    junk = colour.icc_profile("adobe-rgb")[:200] + b"\xff" * 300     # a header, then garbage
    _, response = upload(stack, user, jpeg(picture, junk), "image/jpeg")
    assert response.json()["state"] == "ready", response.text
    seen = np.asarray(Image.open(io.BytesIO(requests.get(response.json()["avatar_url"]).content)).convert("RGB"))
    assert mean_difference(seen, expected) <= 1.0
    assert f"upload {response.json()['media_id']}: embedded colour profile ignored" in heavy_log(stack)


def png_file(pixels, chunks=()):
    """A PNG written by hand (8 or 16-bit RGB, by the array's dtype) with `chunks` [(type,
    data)] before the image data: Pillow cannot write cHRM, gAMA or 16-bit RGB."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width = pixels.shape[:2]
    depth = 16 if pixels.dtype == np.uint16 else 8
    samples = pixels.astype(">u2") if depth == 16 else pixels
    raw = b"".join(b"\0" + samples[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0)
    body = b"".join(chunk(kind, data) for kind, data in chunks)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + body + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def chrm_and_gama(space):
    """The cHRM and gAMA chunks that describe one of colour.SPACES."""
    import struct
    described = colour.SPACES[space]
    points = [described["white"], *described["primaries"]]
    chrm = b"".join(struct.pack(">II", round(x * 100000), round(y * 100000)) for x, y in points)
    return [(b"cHRM", chrm), (b"gAMA", struct.pack(">I", round(100000 / described["transfer"])))]


def iccp(profile):
    import zlib
    return (b"iCCP", b"Cameo test\0\0" + zlib.compress(profile))


def test_a_cmyk_jpeg_is_published_through_its_profile(stack, user, reference):
    # A press profile (a CMYK → Lab table of 17⁴ nodes, 500 KB in eight APP2 segments).
    picture, expected = reference
    ink = Image.fromarray(colour.srgb_to_cmyk(picture), "CMYK")
    tagged_file, stripped_file = io.BytesIO(), io.BytesIO()
    ink.save(tagged_file, "JPEG", quality=95, icc_profile=colour.cmyk_profile())
    ink.save(stripped_file, "JPEG", quality=95)
    tagged = mean_difference(published(stack, user + "t", tagged_file.getvalue()), expected)
    stripped = mean_difference(published(stack, user + "s", stripped_file.getvalue()), expected)
    print(f"\ncmyk jpeg: mean dE00 tagged {tagged:.2f}, stripped {stripped:.2f}")
    assert tagged <= 1.0, tagged
    assert stripped > 3.0, stripped


@pytest.mark.parametrize("space", ["adobe-rgb", "prophoto"])
def test_a_png_with_chromaticities_and_no_profile_is_converted_by_them(stack, user, reference, space):
    picture, expected = reference
    encoded = colour.convert_srgb(picture, space)
    tagged = mean_difference(published(stack, user + "t", png_file(encoded, chrm_and_gama(space))), expected)
    stripped = mean_difference(published(stack, user + "s", png_file(encoded)), expected)
    print(f"\npng cHRM {space}: mean dE00 tagged {tagged:.2f}, stripped {stripped:.2f}")
    assert tagged <= 1.0, tagged
    assert stripped > 3.0, stripped


def test_a_png_with_a_profile_and_a_gama_is_corrected_once(stack, user, reference):
    # The PNG specification: iCCP overrides gAMA. Correcting for both would lighten it twice.
    picture, expected = reference
    encoded = colour.convert_srgb(picture, "prophoto")
    chunks = [iccp(colour.icc_profile("prophoto")), chrm_and_gama("prophoto")[1]]
    assert mean_difference(published(stack, user, png_file(encoded, chunks)), expected) <= 1.0


def test_a_16_bit_png_is_converted_from_its_16_bits(stack, user, reference):
    picture, expected = reference
    # ProPhoto at 16 bits, as raw converters export it: the colours, to the last bit.
    space = colour.SPACES["prophoto"]
    srgb, target = colour.SPACES["srgb"], space
    matrix = np.linalg.inv(colour.rgb_to_xyz_matrix(target)) @ colour.adaptation(srgb["white"], target["white"]) @ colour.rgb_to_xyz_matrix(srgb)
    linear = np.clip(colour.decode(picture, "srgb") @ matrix.T, 0, 1)
    wide = np.round(linear ** (1 / 1.8) * 65535).astype(np.uint16)
    tagged_body = png_file(wide, [iccp(colour.icc_profile("prophoto"))])
    tagged = mean_difference(published(stack, user + "t", tagged_body), expected)
    stripped = mean_difference(published(stack, user + "s", png_file(wide)), expected)
    assert tagged <= 1.0, tagged
    assert stripped > 3.0, stripped
    _, response = upload(stack, user + "l", tagged_body, "image/png")
    # The 16-bit path, not the 8-bit one (whose output differs only below an 8-bit step).
    assert f"upload {response.json()['media_id']}: colours converted to sRGB from the embedded profile Cameo test prophoto, from 16 bits" in heavy_log(stack)


@pytest.mark.parametrize("kind", ["cmyk-jpeg", "rgb-png"])
def test_a_profile_that_declares_a_huge_table_is_ignored(stack, user, reference, kind):
    # A few hundred bytes declaring a 245 MB (CMYK, 80⁴ nodes) or 99 MB (RGB, 255³) table:
    # littlecms's memory budget refuses it, and the upload is published without it.
    picture, expected = reference
    if kind == "cmyk-jpeg":
        out = io.BytesIO()
        Image.fromarray(colour.srgb_to_cmyk(picture), "CMYK").save(out, "JPEG", quality=95, icc_profile=colour.lut_bomb_profile())
        body = out.getvalue()
    else:
        body = png_file(picture, [iccp(colour.lut_bomb_profile(b"RGB ", inputs=3, grid=255))])
    _, response = upload(stack, user, body, TYPES["jpeg" if kind == "cmyk-jpeg" else "png"])
    assert response.json()["state"] == "ready", response.text
    assert f"upload {response.json()['media_id']}: embedded colour profile ignored" in heavy_log(stack)
    if kind == "rgb-png":
        seen = np.asarray(Image.open(io.BytesIO(requests.get(response.json()["avatar_url"]).content)).convert("RGB"))
        assert mean_difference(seen, expected) <= 1.0
