"""Report side of Gauntlet: JUnit normalisation and merge, the matrix, findings."""
