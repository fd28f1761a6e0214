"""Training package: labels CSV + images -> dataset -> train loop -> checkpoint -> evaluation."""
