"""Shape priors for disc and cup masks: optic discs and cups are close to ellipses.

Each function takes a boolean mask and returns one, of the same shape.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component with its holes filled (empty stays empty)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(labels == sizes.argmax())


def convex(mask: np.ndarray) -> np.ndarray:
    """Convex hull of the largest component."""
    from skimage.morphology import convex_hull_image

    component = largest_component(mask)
    return convex_hull_image(component) if component.sum() >= 3 else component


def _fit_ellipse(points: np.ndarray):
    """Direct least-squares ellipse through ``(x, y)`` points: (xc, yc, a, b, theta) or None."""
    from skimage.measure import EllipseModel

    with np.errstate(all="ignore"):
        if hasattr(EllipseModel, "from_estimate"):  # scikit-image >= 0.26
            model = EllipseModel.from_estimate(points)
            if not model:
                return None
            (xc, yc), (a, b), theta = model.center, model.axis_lengths, model.theta
        else:
            model = EllipseModel()
            if not model.estimate(points):
                return None
            xc, yc, a, b, theta = model.params
    params = np.array([xc, yc, a, b, theta], float)
    return params if np.isfinite(params).all() and a > 1 and b > 1 else None


def _radial_residuals(points: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Approximate distance of points to the ellipse: (normalised radius - 1) x mean semi-axis."""
    xc, yc, a, b, theta = params
    dx, dy = points[:, 0] - xc, points[:, 1] - yc
    cos, sin = np.cos(theta), np.sin(theta)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    return np.abs(np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * (a + b) / 2


def ellipse(mask: np.ndarray, seed: int = 0, trials: int = 60) -> np.ndarray:
    """The ellipse fitted robustly (RANSAC) to the outline of the largest component.

    A leak along a vessel or a notch moves few outline points, so it barely moves the
    fit.  Falls back to the component itself when it is small or no ellipse fits well.
    """
    from skimage.draw import ellipse as draw_ellipse
    from skimage.measure import find_contours

    component = largest_component(mask)
    if component.sum() < 20:
        return component
    rows, cols = np.nonzero(component)
    top, left = rows.min(), cols.min()
    local = np.pad(component[top : rows.max() + 1, left : cols.max() + 1], 1)
    outline = max(find_contours(local.astype(np.float32), 0.5), key=len)
    if len(outline) < 10:
        return component
    points = outline[:, ::-1] - 1.0 + np.array([left, top])  # (x, y) in the mask's pixels
    tolerance = max(1.0, 0.02 * np.sqrt(component.sum()))
    rng = np.random.default_rng(seed)
    best, best_inliers = None, None
    for _ in range(trials):
        params = _fit_ellipse(points[rng.choice(len(points), 5, replace=False)])
        if params is None:
            continue
        inliers = _radial_residuals(points, params) < tolerance
        if best_inliers is None or inliers.sum() > best_inliers.sum():
            best, best_inliers = params, inliers
    if best is None or best_inliers.sum() < 0.5 * len(points):
        return component
    refined = _fit_ellipse(points[best_inliers])
    xc, yc, a, b, theta = refined if refined is not None else best
    out = np.zeros(mask.shape, bool)
    rr, cc = draw_ellipse(yc, xc, b, a, shape=mask.shape, rotation=-theta)
    out[rr, cc] = True
    area_ratio = out.sum() / component.sum()
    return out if 0.7 < area_ratio < 1.4 else component


SHAPES = {"components": largest_component, "convex": convex, "ellipse": ellipse}
