"""Non-gated, contrast-enhanced chest CT phantom in Hounsfield units (LVEF and aortic stenosis).

One phantom is one patient lying supine, head first. Anatomy is laid out in a *patient frame* in
millimetres with the axes of RAS+ world space (x towards the patient's Right, y Anterior, z
Superior), its origin on the body's midline at the level of the aortic annulus; ``origin`` places
that frame in the scanner's world (a table position), and the affine maps voxels to world. The
heart therefore lies at x below the midline (the patient's left is -x in RAS+).

Anatomy (HU values in brackets are typical; each patient draws its own):

* Torso: air outside the body (-1000); a body ellipse of subcutaneous fat (-100) and muscle (45);
  the thoracic cavity inside the rib band holds the lungs (about -850, denser posteriorly, the
  gravity gradient), bounded above by the apical domes and below by the two diaphragm domes
  (the right one higher), under which lie the liver (contrast, about +110) and stomach/spleen.
  Lung vessels are branching tapered tubes from the hila (+150..+300 on axis, less by partial
  volume in the small ones), drawn only where lung is.
* Bone: vertebral bodies (cancellous +250..+380, cortical rim +600..+900) with discs every
  ~27 mm, spinal canal, posterior arch and spinous process; the sternum; ribs as oblique bands
  descending anteriorly, so that an axial slice cuts them into arcs (cortex bright, marrow dimmer;
  costal cartilage anteriorly); paraspinal muscle.
* Mediastinum: fat and soft tissue (-50) between the lungs; trachea and main bronchi (air in a
  soft-tissue wall), oesophagus; ascending aorta, arch and descending aorta, SVC, IVC,
  pulmonary trunk and arteries, four pulmonary veins.
* Heart: epicardial fat (-90) around every chamber; left atrium and the aorta at the arterial
  contrast level ``blood_hu`` (+250..+350, the contrast timing of this patient), right-heart
  chambers and veins at ``rv_hu``; the right ventricle is an ellipsoid wrapped on the septum with
  a 3.5 mm wall; the LV is below.
* Aortic root: annulus (radius 10-13 mm) at z = 0, sinus, sinotubular junction; three cusps
  (a cone meeting in the centre plus the three coaptation sheets of the closed valve) drawn with
  the fraction of the cycle the valve is closed. Aortic-valve calcium: Gaussian nodules of
  +350..+950 HU above the blood pool on the cusps (clustered, mostly near the hinges), static (a
  calcified stenotic valve barely opens). Coronary calcium on the LAD in a third of patients
  (outside the valve region, so it must not count).

Left ventricle and cardiac motion. The cavity is a truncated prolate ellipsoid (short semi-axis
``R``, long ``c``, cut by the mitral/aortic base plane ``f c`` above its equator) whose long axis
points from the base to the apex left, anterior and inferior. The apex is fixed; systole shrinks
the short axis by ``fr`` and the long axis by ``fl`` (the base descends), so ESV/EDV =
(1-fr)^2 (1-fl) exactly and ``fr`` is solved for the patient's EF. The epicardium is the same
construction with a wall ``w`` (``wa`` at the apex) whose thickness at each phase is solved so
that the myocardial volume (mass) stays constant: the wall thickens in systole. The cycle is
systole (cosine, ``t_es`` ~ 1/3 of the cycle), rapid filling, diastasis, atrial kick.

The scan is not ECG-gated: each voxel is the *time average* over ``N_PHASES`` equally spaced
instants of one cycle (a random start phase), so the LV blood-myocardium boundary is smeared over
its ED->ES excursion with more weight near diastole, as in a slow non-gated acquisition (real
scans also show slice-to-slice phase jumps; those are not modelled). The width of the smeared
band relative to the cavity (and the cavity size and wall thickness) carries the EF.

Labels are measured, not drawn:

* EDV/ESV: voxel counts of the ED and ES cavity (voxel centres inside the truncated ellipsoid
  at contraction 0 and 1) on the rendered grid times the voxel volume; LVEF = 100 (EDV-ESV)/EDV.
  The analytic volumes of the geometry (``CTPhantom.volumes``) agree to ~1 %.
* Agatston score of the aortic valve from the rendered (blurred, noisy) voxels, see
  :func:`agatston`. Agatston is defined on non-contrast CT with a 130 HU threshold; here the blood
  pool itself is ~300 HU, so the score uses threshold max(130, blood + 150) where ``blood`` is the
  median HU of the LV mid-cavity (a reader's blood-pool ROI), within the aortic-valve region of
  interest (a cylinder around the root axis from 5 mm below the annulus to 6 mm above the cusps,
  radius annulus + 5 mm). With that threshold every counted lesion has a peak >= 400 HU (density
  weight 4). Aortic stenosis = score >= 2000 (men) or >= 1300 (women).

Acquisition: isotropic in-plane spacing, contiguous slices; the scanner point-spread function is a
Gaussian in-plane (sigma 0.4-0.65 mm) and a 3-tap slice-sensitivity profile along z; noise is
Gaussian, added before the PSF and scaled so that its standard deviation after it is ``noise_hu``
(10-20 HU). Calcium nodules are integrated analytically over each voxel (error functions), so
small nodules are not missed between thick slices. ``fov="chest"``: the whole chest, 512 x 512 at
0.6-0.9 mm, 1.5-3 mm slices; ``fov="cardiac"``: a tight heart-centred reconstruction, 192 x 192 at
0.7-0.9 mm (134-173 mm; the pixel widened where the whole heart and aortic root would not fit),
130-160 mm at 2-3 mm slices. Voxel order (i, j, k) with k the slice axis
(inferior -> superior); ``orientation`` 'RAS' (affine diagonal +sx, +sy, +sz) or 'LPS' (-sx, -sy,
+sz, the array flipped along i and j), the same anatomy in world space either way.

The package has one module per job, imported in this order (no module imports a later one):
:mod:`.model` (the constants, :class:`CTPhantom` with its cycle, LV geometry and affine, the voxel grid),
:mod:`.shapes` (vectors and frames, the grid, capsules, ellipsoids, signed distances, partial-volume
painting), :mod:`.sample` (drawing a patient), :mod:`.body` (rasterising the torso, lungs,
mediastinum, spine, sternum, ribs and airways), :mod:`.heart` (rasterising the heart, aortic root and
cusps, the LV over the cycle), :mod:`.measure` (the LV masks, valve ROI, blood pool, Agatston score and
stenosis rule) and :mod:`.render` (calcium, PSF and noise, the measured labels; :func:`patient`). This
package re-exports the public names and the private helpers its callers use (the CT-RATE phantom
builds on the primitives and the drawing steps).
"""
from __future__ import annotations

from .body import _mediastinum, _ribs, _spine, _torso, airways_and_soft_tissue, rib_band
from .heart import _heart_static, _lv_cycle, heart_primitives
from .measure import agatston, as_label, blood_pool_hu, lv_masks, valve_roi
from .model import (AIR, AS_THRESHOLD, CALCIUM_ABOVE_BLOOD, CALCIUM_GAIN, FOVS, N_PHASES, ORIENTATIONS, CTPhantom,
                    Vec, _to_output)
from .render import _blobs, _psf_noise, patient, render
from .sample import sample
from .shapes import _Capsule, _ell_bbox, _ellipse_sd, _Ellipsoid, _field, _Grid, _paint, _soft, _t

__all__ = ["AIR", "AS_THRESHOLD", "CALCIUM_ABOVE_BLOOD", "CALCIUM_GAIN", "FOVS", "N_PHASES", "ORIENTATIONS",
           "CTPhantom", "Vec", "agatston", "airways_and_soft_tissue", "as_label", "blood_pool_hu",
           "heart_primitives", "lv_masks", "patient", "render", "rib_band", "sample", "valve_roi",
           # private helpers the CT-RATE phantom (cardiobench.tasks.ctrate.phantom) uses or cites
           "_Capsule", "_Ellipsoid", "_Grid", "_blobs", "_ell_bbox", "_ellipse_sd", "_field", "_heart_static",
           "_lv_cycle", "_mediastinum", "_paint", "_psf_noise", "_ribs", "_soft", "_spine", "_t", "_to_output",
           "_torso"]
