"""Rating studies: physicians rate samples on a rubric in the browser (``/ui/``), their scores feed the
agreement statistics as ``human:<name>`` raters beside the judges and reward models."""
