"""Files shipped with semclust (read through ``semclust.core.paths.resource``)."""
