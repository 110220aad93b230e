import numpy as np
import pytest
from conftest import synthetic_fundus
from PIL import Image

from napari_attunet.datasets import load_dataset, load_drishti, samples_from_arrays
from napari_attunet.image_files import read_image, refuge_map


def test_folder_of_binary_masks_beside_images(tmp_path):
    image, disc, cup = synthetic_fundus()
    Image.fromarray(image).save(tmp_path / "eye1.png")
    Image.fromarray((disc * 255).astype(np.uint8)).save(tmp_path / "eye1_disc.png")
    Image.fromarray((cup * 255).astype(np.uint8)).save(tmp_path / "eye1_cup.png")
    (sample,) = load_dataset(tmp_path)
    assert sample.name == "eye1"
    assert np.array_equal(sample.disc, disc) and np.array_equal(sample.cup, cup)
    assert sample.image.dtype == np.uint8 and sample.image.shape == (256, 256, 3)


def test_refuge_label_maps_in_a_masks_folder(tmp_path):
    image, disc, cup = synthetic_fundus()
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "g0001.jpg", quality=95)
    Image.fromarray(refuge_map(disc, cup)).save(tmp_path / "masks" / "g0001.bmp")
    (sample,) = load_dataset(tmp_path)
    assert np.array_equal(sample.disc, disc) and np.array_equal(sample.cup, cup)


def test_missing_masks_and_size_mismatch_are_explained(tmp_path):
    image, disc, cup = synthetic_fundus()
    Image.fromarray(image).save(tmp_path / "eye1.png")
    with pytest.raises(ValueError, match="no masks found"):
        load_dataset(tmp_path)
    with pytest.raises(ValueError, match="do not match"):
        samples_from_arrays([(image, disc[:100], cup)])


def test_in_memory_arrays_limit_the_cup_to_the_disc():
    image, disc, cup = synthetic_fundus()
    outside = np.zeros_like(cup)
    outside[0, 0] = True
    (sample,) = samples_from_arrays([(image[..., 0], disc.astype(np.uint8), cup | outside)])
    assert sample.image.shape == (256, 256, 3)
    assert not sample.cup[0, 0] and sample.cup.sum() == cup.sum()


def test_jpeg_exif_orientation_is_applied(tmp_path):
    array = np.zeros((40, 60, 3), np.uint8)
    array[:10, :10] = 255  # bright top-left corner
    picture = Image.fromarray(array)
    exif = picture.getexif()
    exif[0x0112] = 6  # rotated: display needs a 90 degree clockwise turn
    picture.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    loaded = read_image(tmp_path / "rotated.jpg")
    assert loaded.shape[:2] == (60, 40)
    assert loaded[:10, -10:].mean() > 200  # the corner moved to the top right


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(bad)


def test_drishti_training_split(drishti):
    samples = load_drishti(drishti, "train")
    assert len(samples) == 50
    first = samples[0]
    assert first.disc.shape == first.image.shape[:2]
    assert first.cup.sum() < first.disc.sum()
    assert len(first.extra["expert_cdrs"]) == 4
    assert len(load_drishti(drishti, "test")) == 51


def test_mask_encodings_read_as_drawn_by_training_and_the_napari_reader(tmp_path):
    from napari_attunet._reader import get_reader
    from napari_attunet.datasets import binary_mask

    image, disc, _ = synthetic_fundus()
    encodings = {
        "bool": disc,
        "uint8 0/1": disc.astype(np.uint8),
        "uint8 0/255": disc.astype(np.uint8) * 255,
        "uint16 0/255": disc.astype(np.uint16) * 255,
        "uint16 0/65535": disc.astype(np.uint16) * 65535,
        "float 0/1": disc.astype(np.float32),
    }
    for name, mask in encodings.items():
        assert np.array_equal(binary_mask(mask), disc), name
    # Soft maps: at least half of full scale (two of four experts in Drishti-GS1).
    soft = np.array([[0, 63, 127, 128, 191, 255]], np.uint8)
    assert binary_mask(soft).tolist() == [[False, False, False, True, True, True]]
    assert binary_mask(soft, 192 / 255).tolist() == [[False, False, False, False, False, True]]
    assert binary_mask(np.array([[0.2, 0.49, 0.5, 0.9]])).tolist() == [[False, False, True, True]]
    with pytest.raises(ValueError, match="mask values"):
        binary_mask(np.array([[-1.0, 1.0]]))

    # A 16-bit mask holding 0/255 gives the same layer in napari as in training.
    Image.fromarray(image).save(tmp_path / "eye1.png")
    Image.fromarray(encodings["uint16 0/255"]).save(tmp_path / "eye1_disc.png")
    Image.fromarray(encodings["uint8 0/255"]).save(tmp_path / "eye1_cup.png")
    path = tmp_path / "eye1_disc.png"
    assert read_image(path).dtype == np.uint16
    (layer,) = get_reader(str(path))(str(path))
    (sample,) = load_dataset(tmp_path)
    assert np.array_equal(layer[0] != 0, disc) and np.array_equal(sample.disc, disc)
