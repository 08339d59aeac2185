"""Video regions (issue 16): finding the parts of the screen that change in most frames
(:mod:`.regions`), and encoding each as an H.264 stream with PyAV (:mod:`.encoder`), for the
viewers that declared a decoder (:mod:`.streams`)."""
