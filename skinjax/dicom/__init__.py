"""DICOM in and out: colour photographs stored as DICOM made into the photos
the rest of skinjax scores (reading, loading), and results written back as
DICOM Structured Reports (reports). Needs the `dicom` extra (pydicom,
highdicom); without it a DICOM file is refused with the install command.

Patient data (name, ID, birth date, ...) is read with the file and copied
only into a report written for the same patient; it never reaches a log, an
error message or a results file: results name an instance by its UIDs."""
