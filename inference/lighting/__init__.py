"""The target light: Environment (an HDR panorama and its orientation to the camera), camera rays, a panorama
estimated from a background plate, and the one rule that turns the user's chosen source into a Lighting (sources)."""
