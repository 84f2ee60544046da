"""Chest-CT phantom of the CT-RATE twin: a volume in HU, a TotalSegmentator-v2-style label map, the
18 CT-RATE abnormalities planted in the pixels and *measured* from them, and a report written from
the measurements.

Anatomy is :mod:`ct_phantom`'s ``chest`` patient (body, lungs with vessels, spine, ribs, sternum,
mediastinum, heart, aorta, airways, oesophagus, liver), re-gridded at a coarse reconstruction (about
128-160 px at 2-3 mm in-plane, 3-5 mm slices) by replacing its acquisition fields; its aortic-valve
and coronary calcium are removed (the twin plants its own). Two thirds of the scans are non-contrast,
as most of CT-RATE (blood, myocardium, liver and spleen at unenhanced values). The left upper abdomen
is redrawn (stomach with an air-fluid level, spleen, fat), so that every soft-tissue region of fluid
density is either labelled or a planted fluid collection.

One *scan* is one phantom with one set of findings; its *reconstructions* are renders of that phantom
on different grids (spacing, matrix), kernels (in-plane PSF) and noise levels. The labels of a scan
are measured on its first reconstruction (the standard kernel) and shared by all of them, as
CT-RATE's labels come from the scan's report.

Findings and how each is measured (``measure``; ``HU`` is the saved volume, ``L`` the label map):

* Medical material: pacemaker generator + lead, port chamber, or sternotomy wires (metal, 2500-4000
  HU). Measured: volume of voxels >= 1500 HU >= 50 mm^3 (bone stays below ~1100 HU).
* Arterial wall calcification: Gaussian plaques on the intima of the arch and descending aorta.
  Measured: connected foci (26-connected, >= 2 voxels) of HU >= threshold inside the aorta label,
  threshold 130 HU (non-contrast; aorta median < 100 HU) or aorta median + 150 HU (contrast); >= 1 focus.
* Coronary artery wall calcification: plaques in the epicardial fat along the coronary grooves; the
  same rule inside the heart label (which holds the pericardial sac content: chambers, myocardium and
  epicardial fat) minus the aorta.
* Cardiomegaly: heart chambers scaled about the LV centre (the chest refitted around them).
  Measured: cardiothoracic ratio = largest left-right extent of the heart label on an axial slice /
  largest left-right extent of the lungs; >= 0.5.
* Pericardial effusion: a water-density rim (10 HU) of 6-15 mm outside the epicardial fat.
  Measured: unlabelled voxels of fluid density (3x3 in-plane mean in [-20, 30] HU, opened by a 3x3
  in-plane square) within 15 mm of the heart label; >= 10 mL.
* Pleural effusion: dependent (posterior) fluid (8 HU) 30-65 mm deep over the diaphragm, tapering
  upwards, on one or both sides. Measured: the other fluid voxels, as 26-connected collections that
  come within 10 mm of the lungs; >= 20 mL.
* Hiatal hernia: a stomach pouch (air-fluid) through the hiatus above the diaphragm, labelled stomach.
  Measured: stomach label volume above the top slice of the liver label (the right dome); >= 3 mL.
* Emphysema: clusters of spheres at -990..-970 HU in the upper lungs. Measured: LAA-950 = fraction of
  lung-label voxels < -950 HU; >= 5 %.
* The other lung findings are planted as lesions in the lungs (painted only over aerated lung) and
  measured from the rendered voxels inside the lesion's own region (voxel centres inside its shapes):
  lung nodule (solid spheres 10-24 mm; largest equivalent diameter of voxels > -300 HU >= 4 mm; tiny
  2-3 mm nodules in some negatives), lung opacity (ground glass -650..-450 HU, also the halo of most
  consolidations; volume of voxels in (-800, -250) HU >= 5 mL), consolidation (30-45 HU with air
  bronchograms; volume > -150 HU >= 5 mL), atelectasis (posterior basal plates, 20-40 HU; volume
  > -300 HU >= 3 mL), pulmonary fibrotic sequela (peripheral strands; volume > -500 HU >= 1 mL),
  mosaic attenuation (interleaved low -110 HU and high +160 HU lobular patches of 14-24 mm radius; volume of low-patch
  voxels below their lung level - 35 HU (3x3 mean) >= 20 mL), peribronchial thickening (bronchial
  cuffs of 2.5-4 mm soft tissue; wall volume > -500 HU >= 2 mL), bronchiectasis (dilated bronchi,
  lumen radius 5-9 mm; lumen volume < -900 HU >= 1 mL), interlobular septal thickening (a network of
  thin peripheral septa; volume > -700 HU within 1 mm of them >= 1 mL). Lymphadenopathy: mediastinal
  nodes at five stations (normal ones, radius 2-3.5 mm, at about half of them in everyone; enlarged
  ones 10-15 mm, at 2-4 stations); largest axial equivalent diameter of voxels > -5 HU inside a node >= 10 mm.

Sizes, HU and the thresholds were calibrated on 40 scans so that planted and unplanted findings are
far apart (twin_measurements.csv holds every measured quantity); a finding planted but measured
below its threshold (e.g. a plaque outside the scanned range) is a negative: the label is the
measurement, never the plan (``Design.planted`` keeps the plan).
Twin v3 plants bigger and more findings than v2 (plaques, nodes, nodules, mosaic patches, fibrotic
strands, bronchiectatic sites, septa, emphysema): at v2 sizes a planted finding fell below its threshold
often enough (coronary 25 of 400 volumes, bronchiectasis 13) that its report and its label disagreed
with what the smoke encoder could see; at v3, 2 and 5 of 400 (seed 1).

Label map ids are TotalSegmentator v2's (:data:`organs.TOTAL_V2`): five lobes (fissures as planes),
heart, aorta, trachea (with the main bronchi), oesophagus, pulmonary veins, SVC, IVC, liver,
stomach, spleen, vertebrae (levels counted from the left dome = T10), ribs (left/right 1-12),
costal cartilages, sternum and the autochthon muscles.

The package has one module per job, imported in this order (no module imports a later one):
:mod:`.findings` (finding names, label-map ids, thresholds and :data:`RULES`, :class:`findings.Design`
and :class:`findings.Lesion`, trait-driven finding rates), :mod:`.anatomy` (the refitted chest,
abdomen and effusion geometry, the label map, the reconstruction grids), :mod:`.design` (where a
scan's findings are planted), :mod:`.render` (volume, lesions, PSF and noise), :mod:`.measure` (the
measurement rules), :mod:`.report_text` (the report) and :mod:`.scan` (one scan, end to end). This
package re-exports the names its callers use (:func:`scan`, :func:`report`, the rules and thresholds).
"""
from __future__ import annotations

from .findings import CTR_CUT, HERNIA_ML, ID, LAA_CUT, LUNG_IDS, METAL_MM3, PERI_ML, PLEURAL_ML, RULES
from .measure import calcified_foci, calcium_threshold, ctr, effusions_ml, hernia_ml, laa_fraction, metal_mm3
from .report_text import report
from .scan import scan

__all__ = ["CTR_CUT", "HERNIA_ML", "ID", "LAA_CUT", "LUNG_IDS", "METAL_MM3", "PERI_ML", "PLEURAL_ML", "RULES",
           "calcified_foci", "calcium_threshold", "ctr", "effusions_ml", "hernia_ml", "laa_fraction", "metal_mm3",
           "report", "scan"]
