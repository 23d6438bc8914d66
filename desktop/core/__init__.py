"""Plain-Python core of NoMoat: no Qt, no native inference."""
