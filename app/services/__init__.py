"""Plain functions that do the work. They take explicit arguments and never touch ``request``."""
