"""The face models, one module each, in teaching order (facekit.registry lists them by name):

    pca           eigenfaces by randomized PCA (lesson 01)
    vae           a convolutional VAE; its decoder is DCGAN's generator (lesson 02)
    dcgan         DCGAN's networks, the model on the engine, and lesson 03's two-train_on_batch recipe
    lsgan         DCGAN's networks with the least-squares loss (lesson 05)
    wgan_gp       a Wasserstein critic with a gradient penalty (lesson 05)
    hinge         SNGAN: the hinge loss, a spectrally normalised discriminator (lesson 05)
    began         an autoencoder discriminator balanced by k_t (lesson 06)
    conditional   what cgan and acgan share: labels, the conditional generator, a discriminator trunk (infogan's too)
    cgan          attributes by projection in the discriminator (lesson 07)
    acgan         attributes by an auxiliary classifier head (lesson 07)
    infogan       codes the generator must make recoverable by a Q head (lesson 07)
    progan        Progressive GAN: networks grown from 4x4 by fading in a block at each doubling
    image_to_image  what pix2pix and superres share: an image as the generator's input, L1 + adversarial losses,
                  input | output | truth grids, sampling the run's held-out people
    pix2pix       sketch -> face: a U-Net and a PatchGAN on (sketch, face) pairs (lesson 11)
    superres      x4 super-resolution: a residual network with sub-pixel upsampling, L1 or SRGAN (lesson 11)

What they build on stays in facekit/: the engine (gan), losses, layers, data, training and progress; so does the
attribute classifier (attributes), the kit's measuring stick rather than a face model.
"""
