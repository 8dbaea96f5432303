"""The one reading layer: volumes (NIfTI, NRRD, MHA), DICOM series, and whole cases."""
